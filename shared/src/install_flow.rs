//! The verified install: *Install & Configure* → Zoom consent → callback →
//! VERIFIED, and the status the Portal shows.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use url::Url;

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::context::AppContext;
use crate::crypto::{CryptoError, TokenCipher};
use crate::ids::PortalAccountId;
use crate::secrets::SecretsError;
use crate::store::{AuditItem, ConnectionItem, ConnectionStatus, Store, StoreError, account_pk};
use crate::zoom::ZoomError;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("return_to is not an allowed Portal address")]
    ReturnToNotAllowed,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

pub fn hash_state(state: &str) -> String {
    let d = Sha256::digest(state.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `return_to` must be an http(s) URL whose origin is on the allow-list, with
/// no credentials in it.
pub fn check_return_to(raw: &str, allowed_origins: &[String]) -> Result<Url, FlowError> {
    if raw.len() > 2048 {
        return Err(FlowError::ReturnToNotAllowed);
    }
    let url = Url::parse(raw).map_err(|_| FlowError::ReturnToNotAllowed)?;
    let ok = matches!(url.scheme(), "https" | "http")
        && url.username().is_empty()
        && url.password().is_none()
        && allowed_origins
            .iter()
            .any(|o| *o == url.origin().ascii_serialization());
    if ok {
        Ok(url)
    } else {
        Err(FlowError::ReturnToNotAllowed)
    }
}

#[derive(Debug, Serialize)]
pub struct InstallStarted {
    pub authorize_url: String,
    pub expires_at: String,
}

/// Starts an install for `account` (already checked to be the caller's).
pub async fn begin_install(
    ctx: &AppContext,
    caller: &Caller,
    account: &PortalAccountId,
    return_to: Option<&str>,
) -> Result<InstallStarted, FlowError> {
    let return_to = return_to
        .map(|r| check_return_to(r, &ctx.config.portal_allowed_origins))
        .transpose()?;
    let secret = ctx.secrets.get().await?;
    let auth = ctx.zoom.authorize(&secret);
    let now = ctx.clock.now();
    let expires = now + Duration::try_from(ctx.config.state_ttl).unwrap_or(Duration::minutes(10));
    let state_hash = hash_state(auth.state.expose_secret());
    let item = crate::store::StateItem {
        pk: Store::state_pk(&state_hash),
        sk: "STATE".into(),
        portal_account_id: account.clone(),
        portal_user_id: caller.user.clone(),
        pkce_verifier: auth.pkce_verifier.expose_secret().to_owned(),
        return_to: return_to.map(|u| u.to_string()),
        created_at: now.unix_timestamp(),
        expires_at: expires.unix_timestamp(),
        ttl: expires.unix_timestamp() + 3600,
    };
    ctx.store.put_state(&item).await?;
    ctx.store
        .mark_pending(account, &state_hash, expires.unix_timestamp(), now)
        .await?;
    tracing::info!(portal_account = %account, "install started");
    Ok(InstallStarted {
        authorize_url: auth.url.to_string(),
        expires_at: rfc3339(expires),
    })
}

/// The query of Zoom's redirect to `/zoom/oauth/callback`.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Send the browser back to the Portal.
    Redirect(Url),
    /// The state is unknown, used, expired or malformed: show a page, store nothing.
    BadState(BadState),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum BadState {
    Unknown,
    Expired,
}

/// Only short lower-case codes travel back to the Portal in `reason`.
fn reason_code(s: &str) -> String {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        s.to_owned()
    } else {
        "zoom_error".into()
    }
}

fn portal_url(base: &Url, outcome: &str, reason: Option<&str>) -> Url {
    let mut u = base.clone();
    u.query_pairs_mut().append_pair("zoom", outcome);
    if let Some(r) = reason {
        u.query_pairs_mut().append_pair("reason", r);
    }
    u
}

fn plausible_state(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A callback that will not verify: clear the pending marker, audit, send the
/// customer back with the reason.
struct Failed<'a> {
    account: &'a PortalAccountId,
    state_hash: &'a str,
    actor: &'a str,
    dest: &'a Url,
    now: OffsetDateTime,
}

impl Failed<'_> {
    async fn finish(&self, ctx: &AppContext, reason: String) -> Result<CallbackOutcome, FlowError> {
        ctx.store
            .clear_pending(self.account, self.state_hash)
            .await?;
        let audit = AuditItem::new(
            self.account,
            self.now,
            "zoom_install_failed",
            self.actor,
            Some(reason.clone()),
        );
        ctx.store.put_audit(&audit).await?;
        tracing::warn!(portal_account = %self.account, reason = %reason, "install not completed");
        Ok(CallbackOutcome::Redirect(portal_url(
            self.dest,
            "error",
            Some(&reason),
        )))
    }
}

/// Finishes an install from Zoom's redirect.
pub async fn complete_install(
    ctx: &AppContext,
    params: CallbackParams,
) -> Result<CallbackOutcome, FlowError> {
    let home = &ctx.config.portal_integration_url;
    let Some(state) = params.state.filter(|s| !s.is_empty()) else {
        // Began in the Zoom App Marketplace: no state, so nothing binds this
        // code to a Portal account. Do not exchange it; the customer finishes
        // with "Verify your account" in the Portal.
        let url = match params.error {
            Some(e) => portal_url(home, "error", Some(&reason_code(&e))),
            None => portal_url(home, "finish_in_portal", None),
        };
        return Ok(CallbackOutcome::Redirect(url));
    };
    if !plausible_state(&state) {
        return Ok(CallbackOutcome::BadState(BadState::Unknown));
    }
    let state_hash = hash_state(&state);
    let Some(st) = ctx.store.take_state(&state_hash).await? else {
        tracing::warn!("oauth callback with an unknown or already used state");
        return Ok(CallbackOutcome::BadState(BadState::Unknown));
    };
    let account = st.portal_account_id.clone();
    let now = ctx.clock.now();
    if now.unix_timestamp() >= st.expires_at {
        ctx.store.clear_pending(&account, &state_hash).await?;
        tracing::warn!(portal_account = %account, "oauth callback with an expired state");
        return Ok(CallbackOutcome::BadState(BadState::Expired));
    }
    let dest = st
        .return_to
        .as_deref()
        .and_then(|r| check_return_to(r, &ctx.config.portal_allowed_origins).ok())
        .unwrap_or_else(|| home.clone());
    let actor = format!("portal_user:{}", st.portal_user_id);

    let failed = Failed {
        account: &account,
        state_hash: &state_hash,
        actor: &actor,
        dest: &dest,
        now,
    };

    if let Some(e) = params.error {
        return failed.finish(ctx, reason_code(&e)).await;
    }
    let Some(code) = params.code.filter(|c| !c.expose_secret().is_empty()) else {
        return failed.finish(ctx, "missing_code".into()).await;
    };
    let secret = ctx.secrets.get().await?;
    let verifier = SecretString::from(st.pkce_verifier.clone());
    let grant = match ctx.zoom.exchange_code(&secret, &code, &verifier).await {
        Ok(g) => g,
        Err(ZoomError::OAuth { error }) => return failed.finish(ctx, reason_code(&error)).await,
        Err(e) => {
            tracing::warn!(error = %e, "token exchange failed");
            return failed.finish(ctx, "token_exchange_failed".into()).await;
        }
    };
    let me = match ctx.zoom.users_me(&grant.access_token).await {
        Ok(me) => me,
        Err(e) => {
            tracing::warn!(error = %e, "users/me failed");
            return failed.finish(ctx, "zoom_api_error".into()).await;
        }
    };
    let cipher = TokenCipher::from_secret(&secret)?;
    let tokens =
        crate::tokens::seal_tokens(&cipher, &account, &grant.access_token, &grant.refresh_token)?;
    let access_expires_at =
        (now + Duration::try_from(grant.expires_in).unwrap_or(Duration::hours(1))).unix_timestamp();
    let existing = ctx.store.get_connection(&account).await?;
    let expected_version = existing.as_ref().map(|c| c.token_version);
    let previous_zoom = existing.as_ref().and_then(|c| c.zoom_account_id.clone());
    let conn = ConnectionItem {
        pk: account_pk(&account),
        sk: crate::store::CONNECTION_SK.into(),
        portal_account_id: account.clone(),
        status: ConnectionStatus::Verified,
        zoom_account_id: Some(me.account_id.clone()),
        scopes: grant.scopes.clone(),
        verified_at: Some(rfc3339(now)),
        verified_by: Some(st.portal_user_id.clone()),
        authorization_code: Some(code.expose_secret().to_owned()),
        tokens: Some(tokens),
        access_expires_at: Some(access_expires_at),
        token_version: expected_version.map_or(1, |v| v + 1),
        pending_until: None,
        pending_state: None,
        status_reason: None,
        refresh_hash: Some(crate::tokens::refresh_hash(&grant.refresh_token)),
        refreshed_at: Some(now.unix_timestamp()),
        lease_owner: None,
        lease_until: None,
        lease_epoch: 0,
        refresh_pending: None,
        gsi1pk: Some(crate::store::refresh_partition(&account)),
        gsi1sk: Some(access_expires_at),
        purge_after: None,
        purged_at: None,
        updated_at: rfc3339(now),
    };
    let audit = AuditItem::new(
        &account,
        now,
        "zoom_install_verified",
        &actor,
        Some(format!("zoom_account_id={}", me.account_id)),
    );
    match ctx
        .store
        .save_verified(&conn, expected_version, previous_zoom.as_ref(), &audit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ZoomAccountInUse) => {
            return failed.finish(ctx, "zoom_account_in_use".into()).await;
        }
        Err(StoreError::Conflict) => return failed.finish(ctx, "concurrent_install".into()).await,
        Err(e) => return Err(e.into()),
    }
    tracing::info!(portal_account = %account, zoom_account = %me.account_id, "zoom account verified");
    Ok(CallbackOutcome::Redirect(portal_url(
        &dest, "verified", None,
    )))
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Capabilities {
    pub order_numbers: bool,
    pub upload_numbers: bool,
    pub provisioning: bool,
}

impl Capabilities {
    /// What the granted scopes allow (classic or granular scope names).
    pub fn from_scopes(verified: bool, scopes: &[String]) -> Self {
        let has = |names: &[&str]| verified && scopes.iter().any(|s| names.contains(&s.as_str()));
        let push = has(&[
            "phone_peering:write:admin",
            "number_management:write:peering_number:admin",
            "phone:write:peering_number:admin",
        ]);
        Self {
            order_numbers: push,
            upload_numbers: push,
            provisioning: has(&["phone:write:admin", "phone:write:user_number:admin"]),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub status: &'static str,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zoom_account_id: Option<String>,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// True while an install started in the Portal has not come back yet.
    pub install_in_progress: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub capabilities: Capabilities,
}

pub fn status_view(conn: Option<&ConnectionItem>, now: OffsetDateTime) -> StatusView {
    let pending = conn
        .and_then(|c| c.pending_until)
        .is_some_and(|u| u > now.unix_timestamp());
    let stored = conn
        .map(|c| c.status)
        .unwrap_or(ConnectionStatus::NotConnected);
    let verified = stored == ConnectionStatus::Verified;
    let status = match stored {
        ConnectionStatus::Verified => "verified",
        _ if pending => "pending",
        ConnectionStatus::NotConnected => "not_connected",
        ConnectionStatus::NeedsReauth => "needs_reauth",
        ConnectionStatus::Disconnected => "disconnected",
    };
    let scopes = conn.map(|c| c.scopes.clone()).unwrap_or_default();
    StatusView {
        status,
        verified,
        authorization_code: conn
            .filter(|_| verified)
            .and_then(|c| c.authorization_code.clone()),
        zoom_account_id: conn.and_then(|c| c.zoom_account_id.as_ref().map(|z| z.to_string())),
        capabilities: Capabilities::from_scopes(verified, &scopes),
        scopes,
        verified_at: conn.and_then(|c| c.verified_at.clone()),
        install_in_progress: pending,
        reason: conn.and_then(|c| c.status_reason.clone()),
    }
}

pub async fn status(ctx: &AppContext, account: &PortalAccountId) -> Result<StatusView, FlowError> {
    let conn = ctx.store.get_connection(account).await?;
    Ok(status_view(conn.as_ref(), ctx.clock.now()))
}

impl FlowError {
    /// The HTTP answer for this error; internal causes are logged, never sent.
    pub fn problem(&self) -> crate::http::Problem {
        use crate::http::Problem;
        match self {
            FlowError::ReturnToNotAllowed => Problem::bad_request(
                "return_to",
                "return_to must be an address on the Portal's allowed origins",
            ),
            FlowError::Secrets(e) => {
                tracing::error!(error = %e, "app secret unavailable");
                Problem::unavailable("the service is not configured correctly; try again later")
            }
            other => {
                tracing::error!(error = %other, "request failed");
                Problem::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn state_hash_is_sha256_hex() {
        assert_eq!(
            hash_state("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn return_to_allow_list() {
        let allowed = vec!["https://portal.example.com".to_string()];
        assert!(
            check_return_to(
                "https://portal.example.com/settings/integration?x=1",
                &allowed
            )
            .is_ok()
        );
        for bad in [
            "https://evil.example.com/",
            "https://portal.example.com.evil.com/",
            "https://portal.example.com:8443/",
            "http://portal.example.com/",
            "https://user@portal.example.com/",
            "javascript:alert(1)",
            "//portal.example.com/",
            "/settings",
        ] {
            assert!(check_return_to(bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn reason_codes_are_sanitised() {
        assert_eq!(reason_code("access_denied"), "access_denied");
        assert_eq!(reason_code("<script>"), "zoom_error");
        assert_eq!(reason_code(""), "zoom_error");
    }

    #[test]
    fn capabilities_follow_scopes() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = Capabilities::from_scopes(
            true,
            &s(&["phone:write:admin", "phone_peering:write:admin"]),
        );
        assert_eq!(
            all,
            Capabilities {
                order_numbers: true,
                upload_numbers: true,
                provisioning: true
            }
        );
        let none = Capabilities::from_scopes(
            false,
            &s(&["phone:write:admin", "phone_peering:write:admin"]),
        );
        assert_eq!(
            none,
            Capabilities {
                order_numbers: false,
                upload_numbers: false,
                provisioning: false
            }
        );
        let prov = Capabilities::from_scopes(true, &s(&["phone:write:admin"]));
        assert!(prov.provisioning && !prov.order_numbers);
    }

    #[test]
    fn status_pending_then_expires() {
        let now = datetime!(2026-12-04 10:00 UTC);
        let mut c = ConnectionItem {
            pk: "ACCOUNT#a".into(),
            sk: "CONNECTION".into(),
            portal_account_id: PortalAccountId::parse("a").unwrap(),
            status: ConnectionStatus::NotConnected,
            zoom_account_id: None,
            scopes: vec![],
            verified_at: None,
            verified_by: None,
            authorization_code: Some("old".into()),
            tokens: None,
            access_expires_at: None,
            token_version: 0,
            pending_until: Some(now.unix_timestamp() + 600),
            pending_state: Some("h".into()),
            status_reason: None,
            refresh_hash: None,
            refreshed_at: None,
            lease_owner: None,
            lease_until: None,
            lease_epoch: 0,
            refresh_pending: None,
            gsi1pk: None,
            gsi1sk: None,
            purge_after: None,
            purged_at: None,
            updated_at: String::new(),
        };
        assert_eq!(status_view(None, now).status, "not_connected");
        let v = status_view(Some(&c), now);
        assert_eq!(
            (v.status, v.install_in_progress, v.authorization_code),
            ("pending", true, None)
        );
        assert_eq!(
            status_view(Some(&c), now + Duration::minutes(10)).status,
            "not_connected"
        );
        c.status = ConnectionStatus::Verified;
        let v = status_view(Some(&c), now);
        assert_eq!(
            (v.status, v.verified, v.authorization_code.as_deref()),
            ("verified", true, Some("old"))
        );
    }
}
