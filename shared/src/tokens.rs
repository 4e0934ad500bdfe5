//! The token provider: a valid Zoom access token for a Portal account, never
//! losing a grant to Zoom's rotating, single-use refresh tokens.
//!
//! Protocol (docs/ARCHITECTURE.md, "Refresh"):
//! 1. Fast path: the stored access token has more than the margin left → use it.
//! 2. Otherwise, within this process, one caller per account goes on (the
//!    others wait for it and then find the new token).
//! 3. Take the account's lease in DynamoDB (conditional update: free or
//!    expired). Busy → wait with jitter, re-read, adopt what the holder stored.
//! 4. With the lease: the update returned the item consistently; if another
//!    instance already refreshed, adopt and release. If a previous holder sent
//!    the same refresh token and never recorded Zoom's answer
//!    (`refresh_pending`), the outcome is unknown: mark `needs_reauth`
//!    (`refresh_outcome_unknown`) instead of replaying the token.
//! 5. Mark `refresh_pending`, call Zoom, then store the new pair by
//!    compare-and-swap on `token_version` and the spent refresh token's hash,
//!    retrying that write hard (the new refresh token exists only in memory).
//! 6. `invalid_grant` (or another terminal OAuth error) → `needs_reauth` with
//!    the reason, audited; never retried with the old token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::AppContext;
use crate::crypto::{CryptoError, TokenCipher};
use crate::ids::PortalAccountId;
use crate::secrets::SecretsError;
use crate::store::{AuditItem, ConnectionItem, ConnectionStatus, StoreError};
use crate::zoom::ZoomError;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the account is not connected to Zoom")]
    NotConnected,
    #[error(
        "Zoom no longer accepts this account's grant ({reason}); run Install & Configure again"
    )]
    NeedsReauth { reason: String },
    #[error("another refresher holds the lease for too long")]
    LeaseBusy,
    #[error("Zoom is unavailable for token refresh: {0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// When a stored token is good enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// For callers about to use the token: more than 5 minutes left.
    OnDemand,
    /// For the scheduled job: the account's due time is more than 20 minutes away.
    Scheduled,
}

pub const ON_DEMAND_MARGIN_SECS: i64 = 5 * 60;
pub const SCHEDULE_WINDOW_SECS: i64 = 20 * 60;
/// An idle grant is refreshed at least this often (keeps refresh tokens alive).
pub const IDLE_REFRESH_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// The stored token was good.
    Fresh,
    /// This caller refreshed it.
    Refreshed,
    /// Another caller or instance refreshed it; this one adopted the result.
    Adopted,
}

pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: i64,
    pub how: Freshness,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("how", &self.how)
            .finish()
    }
}

/// Lets tests stand in the window between Zoom's answer and the store write
/// (to kill a refresher there). Production uses none.
pub trait RefreshObserver: Send + Sync + 'static {
    fn zoom_answered(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Per-process refresh state: the in-process single flight and the lease owner id.
pub struct RefreshCoordinator {
    owner: String,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    observer: RwLock<Option<Arc<dyn RefreshObserver>>>,
    /// How long a lease lasts; longer than any refresh call (HTTP timeout).
    pub lease_secs: i64,
    /// How many times a caller re-reads while another holds the lease.
    pub max_waits: u32,
}

impl RefreshCoordinator {
    pub fn new(lease_secs: i64) -> Self {
        Self {
            owner: format!("proc-{}", ulid::Ulid::new()),
            locks: Mutex::new(HashMap::new()),
            observer: RwLock::new(None),
            lease_secs,
            max_waits: 400,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn set_observer(&self, o: Option<Arc<dyn RefreshObserver>>) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = o;
    }

    fn observer(&self) -> Option<Arc<dyn RefreshObserver>> {
        self.observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock_for(&self, account: &PortalAccountId) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(account.to_string()).or_default().clone()
    }
}

pub fn refresh_hash(refresh_token: &SecretString) -> String {
    hex::encode(Sha256::digest(refresh_token.expose_secret().as_bytes()))
}

#[derive(Serialize, Deserialize)]
struct SealedTokens {
    access_token: String,
    refresh_token: String,
}

/// Seals an access/refresh pair for the account's connection item.
pub fn seal_tokens(
    cipher: &TokenCipher,
    account: &PortalAccountId,
    access: &SecretString,
    refresh: &SecretString,
) -> Result<String, CryptoError> {
    let json = serde_json::to_vec(&SealedTokens {
        access_token: access.expose_secret().to_owned(),
        refresh_token: refresh.expose_secret().to_owned(),
    })
    .map_err(|_| CryptoError::Malformed)?;
    cipher.seal(account.as_str(), &json)
}

fn open_tokens(
    cipher: &TokenCipher,
    account: &PortalAccountId,
    sealed: &str,
) -> Result<(SecretString, SecretString), CryptoError> {
    let plain = cipher.open(account.as_str(), sealed)?;
    let t: SealedTokens = serde_json::from_slice(&plain).map_err(|_| CryptoError::Malformed)?;
    Ok((
        SecretString::from(t.access_token),
        SecretString::from(t.refresh_token),
    ))
}

/// OAuth errors after which the grant is gone (reference §1.10).
fn terminal(error: &str) -> bool {
    matches!(
        error,
        "invalid_grant" | "invalid_request" | "invalid_client" | "unauthorized_client"
    )
}

/// A valid access token for `account` (at least five minutes left).
pub async fn valid_access_token(
    ctx: &AppContext,
    account: &PortalAccountId,
) -> Result<AccessToken, TokenError> {
    ensure_fresh(ctx, account, RefreshPolicy::OnDemand).await
}

fn is_fresh(conn: &ConnectionItem, now: i64, policy: RefreshPolicy) -> bool {
    match policy {
        RefreshPolicy::OnDemand => conn
            .access_expires_at
            .is_some_and(|x| x - now > ON_DEMAND_MARGIN_SECS),
        RefreshPolicy::Scheduled => conn
            .gsi1sk
            .is_some_and(|due| due > now + SCHEDULE_WINDOW_SECS),
    }
}

fn verified(conn: Option<ConnectionItem>) -> Result<ConnectionItem, TokenError> {
    let c = conn.ok_or(TokenError::NotConnected)?;
    match c.status {
        ConnectionStatus::Verified => Ok(c),
        ConnectionStatus::NeedsReauth => Err(TokenError::NeedsReauth {
            reason: c.status_reason.unwrap_or_else(|| "unknown".into()),
        }),
        _ => Err(TokenError::NotConnected),
    }
}

fn current(
    ctx_cipher: &TokenCipher,
    account: &PortalAccountId,
    conn: &ConnectionItem,
    how: Freshness,
) -> Result<AccessToken, TokenError> {
    let sealed = conn.tokens.as_deref().ok_or(TokenError::NotConnected)?;
    let (access, _) = open_tokens(ctx_cipher, account, sealed)?;
    Ok(AccessToken {
        token: access,
        expires_at: conn.access_expires_at.unwrap_or(0),
        how,
    })
}

/// Makes sure the account's token satisfies `policy`, refreshing under the
/// lease if needed. See the module documentation for the protocol.
pub async fn ensure_fresh(
    ctx: &AppContext,
    account: &PortalAccountId,
    policy: RefreshPolicy,
) -> Result<AccessToken, TokenError> {
    let secret = ctx.secrets.get().await?;
    let cipher = TokenCipher::from_secret(&secret)?;
    let conn = verified(ctx.store.get_connection(account).await?)?;
    if is_fresh(&conn, ctx.clock.now().unix_timestamp(), policy) {
        return current(&cipher, account, &conn, Freshness::Fresh);
    }

    // One caller per account in this process goes on; the rest wait here and
    // then usually find the fresh token on their first read.
    let lock = ctx.refresh.lock_for(account);
    let _guard = lock.lock().await;
    let mut waited = false;
    let mut waits = 0;
    let leased = loop {
        let conn = verified(ctx.store.get_connection(account).await?)?;
        let now = ctx.clock.now().unix_timestamp();
        if is_fresh(&conn, now, policy) {
            let how = if waited {
                Freshness::Adopted
            } else {
                Freshness::Fresh
            };
            return current(&cipher, account, &conn, how);
        }
        match ctx
            .store
            .take_refresh_lease(account, ctx.refresh.owner(), now, ctx.refresh.lease_secs)
            .await?
        {
            Some(c) => break c,
            None => {
                waits += 1;
                if waits > ctx.refresh.max_waits {
                    return Err(TokenError::LeaseBusy);
                }
                waited = true;
                let ms = rand::thread_rng().gen_range(15..45);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    };
    let epoch = leased.lease_epoch;
    let version = leased.token_version;
    let owner = ctx.refresh.owner();
    let now = ctx.clock.now();

    if is_fresh(&leased, now.unix_timestamp(), policy) {
        ctx.store.release_lease(account, owner, epoch).await?;
        return current(&cipher, account, &leased, Freshness::Adopted);
    }
    if leased.refresh_pending == Some(version) {
        // Someone sent this refresh token and died before storing Zoom's answer.
        return needs_reauth(ctx, account, version, "refresh_outcome_unknown").await;
    }
    let (Some(sealed), Some(spent_hash)) = (leased.tokens.as_deref(), leased.refresh_hash.clone())
    else {
        ctx.store.release_lease(account, owner, epoch).await?;
        return Err(TokenError::NotConnected);
    };
    let (_, refresh) = open_tokens(&cipher, account, sealed)?;
    if !ctx
        .store
        .set_refresh_pending(account, owner, epoch, version)
        .await?
    {
        return Err(TokenError::LeaseBusy);
    }

    match ctx.zoom.refresh(&secret, &refresh).await {
        Ok(grant) => {
            if let Some(o) = ctx.refresh.observer() {
                o.zoom_answered().await;
            }
            let now = ctx.clock.now();
            let expires_at = now.unix_timestamp() + grant.expires_in.as_secs() as i64;
            let due_at = match policy {
                RefreshPolicy::OnDemand => expires_at,
                RefreshPolicy::Scheduled => now.unix_timestamp() + IDLE_REFRESH_SECS,
            };
            let sealed = seal_tokens(&cipher, account, &grant.access_token, &grant.refresh_token)?;
            let new_hash = refresh_hash(&grant.refresh_token);
            // The new refresh token lives only in memory until this succeeds.
            let mut attempt = 0u32;
            loop {
                let r = ctx
                    .store
                    .save_refreshed(
                        account,
                        version,
                        &spent_hash,
                        &sealed,
                        &new_hash,
                        expires_at,
                        due_at,
                        now,
                    )
                    .await;
                match r {
                    Ok(true) => break,
                    Ok(false) => {
                        // Only a re-install can change the version under our
                        // lease; adopt whatever is there now.
                        tracing::warn!(portal_account = %account, "refreshed pair lost a compare-and-swap; adopting the stored grant");
                        let conn = verified(ctx.store.get_connection(account).await?)?;
                        return current(&cipher, account, &conn, Freshness::Adopted);
                    }
                    Err(e) if attempt < 12 => {
                        attempt += 1;
                        tracing::warn!(portal_account = %account, attempt, error = %e, "storing the refreshed pair failed; retrying");
                        let backoff = 50u64 << attempt.min(6);
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            tracing::info!(portal_account = %account, version = version + 1, "zoom grant refreshed");
            crate::metrics::count("TokenRefreshes", 1);
            Ok(AccessToken {
                token: grant.access_token,
                expires_at,
                how: Freshness::Refreshed,
            })
        }
        Err(ZoomError::OAuth { error }) if terminal(&error) => {
            needs_reauth(ctx, account, version, &error).await
        }
        Err(e @ (ZoomError::Unreachable(_) | ZoomError::Api { .. } | ZoomError::OAuth { .. })) => {
            // Zoom did not take the token (never reached, or answered with an error).
            ctx.store.release_lease(account, owner, epoch).await?;
            Err(TokenError::Transient(e.to_string()))
        }
        Err(e) => {
            // Sent, but the answer is unknown: the token may be spent.
            tracing::warn!(portal_account = %account, error = %e, "refresh outcome unknown");
            let conn = verified(ctx.store.get_connection(account).await?)?;
            if conn.token_version != version {
                return current(&cipher, account, &conn, Freshness::Adopted);
            }
            needs_reauth(ctx, account, version, "refresh_outcome_unknown").await
        }
    }
}

async fn needs_reauth(
    ctx: &AppContext,
    account: &PortalAccountId,
    version: u64,
    reason: &str,
) -> Result<AccessToken, TokenError> {
    let now = ctx.clock.now();
    let audit = AuditItem::new(
        account,
        now,
        "zoom_grant_needs_reauth",
        "system:token-refresh",
        Some(reason.to_owned()),
    );
    if ctx
        .store
        .mark_needs_reauth(account, version, reason, &audit, now)
        .await?
    {
        tracing::warn!(portal_account = %account, reason, "zoom grant needs re-authorization");
    }
    let conn = ctx.store.get_connection(account).await?;
    match conn {
        Some(c) if c.status == ConnectionStatus::Verified && c.token_version != version => {
            // A re-install replaced the grant meanwhile.
            let secret = ctx.secrets.get().await?;
            current(
                &TokenCipher::from_secret(&secret)?,
                account,
                &c,
                Freshness::Adopted,
            )
        }
        _ => Err(TokenError::NeedsReauth {
            reason: reason.to_owned(),
        }),
    }
}

/// Counts of one scheduled refresh run.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshReport {
    pub due: usize,
    pub refreshed: usize,
    pub adopted: usize,
    pub fresh: usize,
    pub needs_reauth: usize,
    pub failed: usize,
}

/// The scheduled job: every grant due within the window (access token about
/// to expire after use, or idle for 7 days), with bounded concurrency; one
/// account's failure never stops the others.
pub async fn refresh_due(
    ctx: &AppContext,
    concurrency: usize,
) -> Result<RefreshReport, TokenError> {
    use futures::StreamExt;
    let until = ctx.clock.now().unix_timestamp() + SCHEDULE_WINDOW_SECS;
    let mut accounts = Vec::new();
    for shard in 0..crate::store::DUE_SHARDS {
        accounts.extend(
            ctx.store
                .due_accounts(&format!("REFRESH#{shard}"), until)
                .await?,
        );
    }
    let mut report = RefreshReport {
        due: accounts.len(),
        ..Default::default()
    };
    let results: Vec<_> = futures::stream::iter(accounts)
        .map(|a| async move {
            let r = ensure_fresh(ctx, &a, RefreshPolicy::Scheduled).await;
            (a, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (account, r) in results {
        match r {
            Ok(t) => match t.how {
                Freshness::Refreshed => report.refreshed += 1,
                Freshness::Adopted => report.adopted += 1,
                Freshness::Fresh => report.fresh += 1,
            },
            Err(TokenError::NeedsReauth { .. }) => report.needs_reauth += 1,
            Err(e) => {
                tracing::error!(portal_account = %account, error = %e, "scheduled refresh failed");
                crate::metrics::count("RefreshFailures", 1);
                report.failed += 1;
            }
        }
    }
    tracing::info!(?report, "scheduled refresh done");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_errors_follow_the_reference() {
        for e in [
            "invalid_grant",
            "invalid_request",
            "invalid_client",
            "unauthorized_client",
        ] {
            assert!(terminal(e), "{e}");
        }
        assert!(!terminal("temporarily_unavailable"));
        assert!(!terminal("server_error"));
    }

    #[test]
    fn refresh_hash_is_sha256_hex_and_access_token_debug_redacts() {
        let h = refresh_hash(&SecretString::from("abc"));
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = AccessToken {
            token: SecretString::from("TOKEN-CANARY"),
            expires_at: 1,
            how: Freshness::Fresh,
        };
        assert!(!format!("{t:?}").contains("CANARY"));
    }
}
