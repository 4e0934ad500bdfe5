//! DynamoDB access: one table, single-table design (see docs/ARCHITECTURE.md).
//! Every write that can race carries a condition.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::ids::{PortalAccountId, PortalUserId, ZoomAccountId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB call failed: {0}")]
    Dynamo(String),
    #[error("item could not be (de)serialised: {0}")]
    Serde(String),
    #[error("the item changed concurrently")]
    Conflict,
    #[error("this Zoom account is already connected to another Portal account")]
    ZoomAccountInUse,
}

pub fn dynamo<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Dynamo(DisplayErrorContext(e).to_string())
}
pub fn serde_err(e: serde_dynamo::Error) -> StoreError {
    StoreError::Serde(e.to_string())
}

/// Ok(true) on success, Ok(false) when the condition failed, Err otherwise.
pub fn conditional<E: std::error::Error + 'static>(
    r: Result<(), E>,
    is_ccf: impl Fn(&E) -> bool,
) -> Result<bool, StoreError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if is_ccf(&e) => Ok(false),
        Err(e) => Err(dynamo(e)),
    }
}

pub fn account_pk(a: &PortalAccountId) -> String {
    format!("ACCOUNT#{a}")
}
pub const CONNECTION_SK: &str = "CONNECTION";

/// A pending install: `STATE#<sha256(state)>`. Only the hash of the state is
/// stored, so reading the table does not yield a usable state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub portal_account_id: PortalAccountId,
    pub portal_user_id: PortalUserId,
    pub pkce_verifier: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub return_to: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// DynamoDB TTL attribute; expiry itself is checked in code.
    pub ttl: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    NotConnected,
    Verified,
    NeedsReauth,
    Disconnected,
}

/// `ACCOUNT#<portal account>` / `CONNECTION`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub portal_account_id: PortalAccountId,
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub zoom_account_id: Option<ZoomAccountId>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verified_by: Option<PortalUserId>,
    /// The (already spent) authorization code, kept for the Portal to display.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorization_code: Option<String>,
    /// Sealed `{access_token, refresh_token}` (see `crypto`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_expires_at: Option<i64>,
    #[serde(default)]
    pub token_version: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_until: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_reason: Option<String>,
    /// SHA-256 of the refresh token inside `tokens` (the one the next refresh spends).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refreshed_at: Option<i64>,
    /// Refresh lease: who holds it, until when, and a counter of takes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lease_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lease_until: Option<i64>,
    #[serde(default)]
    pub lease_epoch: u64,
    /// Set to `token_version` just before the refresh token is sent to Zoom,
    /// cleared when the answer is stored: if a lease holder dies in between,
    /// the next holder knows the outcome is unknown instead of replaying.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_pending: Option<u64>,
    /// Sparse `DueIndex`: `REFRESH#<shard>` while verified, `PURGE#<shard>`
    /// while a deauthorized account awaits its purge.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1pk: Option<String>,
    /// When the scheduled job must act (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1sk: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purge_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purged_at: Option<String>,
    pub updated_at: String,
}

/// Spreads the due index over a few partitions.
pub const DUE_SHARDS: u8 = 4;

pub fn due_shard(account: &PortalAccountId) -> u8 {
    use sha2::{Digest, Sha256};
    Sha256::digest(account.as_str().as_bytes())[0] % DUE_SHARDS
}

pub fn refresh_partition(account: &PortalAccountId) -> String {
    format!("REFRESH#{}", due_shard(account))
}

pub fn purge_partition(account: &PortalAccountId) -> String {
    format!("PURGE#{}", due_shard(account))
}

pub const DUE_INDEX: &str = "DueIndex";

/// `ZOOM#<zoom account>` / `OWNER`: which Portal account holds this Zoom
/// account. Makes the link one-to-one (Zoom keeps only the newest grant per
/// app and account) and answers webhook look-ups with a consistent read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoomOwnerItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub portal_account_id: PortalAccountId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub at: String,
    pub action: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

impl AuditItem {
    pub fn new(
        account: &PortalAccountId,
        now: OffsetDateTime,
        action: &str,
        actor: &str,
        detail: Option<String>,
    ) -> Self {
        let at = rfc3339(now);
        Self {
            pk: account_pk(account),
            sk: format!("AUDIT#{at}#{}", ulid::Ulid::new()),
            at,
            action: action.to_owned(),
            actor: actor.to_owned(),
            detail,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    aws: std::sync::Arc<crate::context::LazyAws>,
    client: std::sync::Arc<tokio::sync::OnceCell<Client>>,
    table: String,
}

pub fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("PK".to_owned(), AttributeValue::S(pk)),
        ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

impl Store {
    pub fn new(aws: std::sync::Arc<crate::context::LazyAws>, table: String) -> Self {
        Self {
            aws,
            client: Default::default(),
            table,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, built on first use.
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(self.aws.get().await) })
            .await
    }

    pub fn state_pk(state_hash: &str) -> String {
        format!("STATE#{state_hash}")
    }

    pub async fn put_state(&self, item: &StateItem) -> Result<(), StoreError> {
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(item).map_err(serde_err)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(|e| match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => StoreError::Conflict,
                e => dynamo(e),
            })?;
        Ok(())
    }

    /// Deletes the state and returns it, or `None` if it was not there (never
    /// issued, or already used): a state works once.
    pub async fn take_state(&self, state_hash: &str) -> Result<Option<StateItem>, StoreError> {
        let out = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(Self::state_pk(state_hash), "STATE")))
            .condition_expression("attribute_exists(PK)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => match o.attributes {
                Some(a) => Ok(Some(serde_dynamo::from_item(a).map_err(serde_err)?)),
                None => Ok(None),
            },
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(None),
                e => Err(dynamo(e)),
            },
        }
    }

    /// Records that an install is in flight for the account (status `pending`).
    pub async fn mark_pending(
        &self,
        account: &PortalAccountId,
        state_hash: &str,
        until: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression(
                "SET pending_until = :u, pending_state = :h, portal_account_id = :a, \
                 updated_at = :now, #st = if_not_exists(#st, :nc), \
                 token_version = if_not_exists(token_version, :zero)",
            )
            .condition_expression("attribute_not_exists(pending_until) OR pending_until <= :u")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":u", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":h", AttributeValue::S(state_hash.to_owned()))
            .expression_attribute_values(":a", AttributeValue::S(account.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(rfc3339(now)))
            .expression_attribute_values(":nc", AttributeValue::S("not_connected".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map_err(|e| match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => StoreError::Conflict,
                e => dynamo(e),
            })?;
        Ok(())
    }

    /// Clears the pending marker if it still belongs to this state.
    pub async fn clear_pending(
        &self,
        account: &PortalAccountId,
        state_hash: &str,
    ) -> Result<(), StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression("REMOVE pending_until, pending_state")
            .condition_expression("pending_state = :h")
            .expression_attribute_values(":h", AttributeValue::S(state_hash.to_owned()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(()),
                e => Err(dynamo(e)),
            },
        }
    }

    pub async fn get_connection(
        &self,
        account: &PortalAccountId,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item
            .map(|i| serde_dynamo::from_item(i).map_err(serde_err))
            .transpose()
    }

    pub async fn zoom_owner(
        &self,
        zoom: &ZoomAccountId,
    ) -> Result<Option<PortalAccountId>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("ZOOM#{zoom}"), "OWNER")))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out
            .item
            .map(|i| serde_dynamo::from_item::<_, ZoomOwnerItem>(i).map_err(serde_err))
            .transpose()?
            .map(|o| o.portal_account_id))
    }

    /// Stores a freshly verified connection in one transaction: the connection
    /// (only if nobody changed it since `expected_version`), the Zoom-account
    /// claim (only if free or already ours), the release of a previous claim,
    /// and the audit record.
    pub async fn save_verified(
        &self,
        conn: &ConnectionItem,
        expected_version: Option<u64>,
        previous_zoom: Option<&ZoomAccountId>,
        audit: &AuditItem,
    ) -> Result<(), StoreError> {
        let zoom = conn
            .zoom_account_id
            .as_ref()
            .ok_or_else(|| StoreError::Serde("verified connection without zoom account".into()))?;
        let account = AttributeValue::S(conn.portal_account_id.to_string());
        let put_conn = {
            let b = Put::builder()
                .table_name(&self.table)
                .set_item(Some(serde_dynamo::to_item(conn).map_err(serde_err)?));
            match expected_version {
                None => b.condition_expression("attribute_not_exists(PK)"),
                Some(v) => b
                    .condition_expression("token_version = :v")
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            }
            .build()
            .map_err(dynamo)?
        };
        let owner = ZoomOwnerItem {
            pk: format!("ZOOM#{zoom}"),
            sk: "OWNER".into(),
            portal_account_id: conn.portal_account_id.clone(),
        };
        let put_owner = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&owner).map_err(serde_err)?))
            .condition_expression("attribute_not_exists(PK) OR portal_account_id = :a")
            .expression_attribute_values(":a", account.clone())
            .build()
            .map_err(dynamo)?;
        let put_audit = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(audit).map_err(serde_err)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(dynamo)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put_conn).build(),
            TransactWriteItem::builder().put(put_owner).build(),
            TransactWriteItem::builder().put(put_audit).build(),
        ];
        if let Some(prev) = previous_zoom.filter(|p| *p != zoom) {
            let del = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(format!("ZOOM#{prev}"), "OWNER")))
                .condition_expression("attribute_not_exists(PK) OR portal_account_id = :a")
                .expression_attribute_values(":a", account)
                .build()
                .map_err(dynamo)?;
            items.push(TransactWriteItem::builder().delete(del).build());
        }
        let r = self
            .client()
            .await
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    let failed: Vec<bool> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code() == Some("ConditionalCheckFailed"))
                        .collect();
                    if failed.get(1).copied().unwrap_or(false) {
                        Err(StoreError::ZoomAccountInUse)
                    } else {
                        Err(StoreError::Conflict)
                    }
                }
                e => Err(dynamo(e)),
            },
        }
    }

    /// Takes the account's refresh lease if it is free or expired and the
    /// connection is verified. Returns the connection as it is after the take
    /// (a consistent view), or `None` if someone else holds the lease.
    pub async fn take_refresh_lease(
        &self,
        account: &PortalAccountId,
        owner: &str,
        now: i64,
        lease_secs: i64,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression(
                "SET lease_owner = :o, lease_until = :u, \
                 lease_epoch = if_not_exists(lease_epoch, :zero) + :one",
            )
            .condition_expression(
                "#st = :verified AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":u", AttributeValue::N((now + lease_secs).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":verified", AttributeValue::S("verified".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(o) => o
                .attributes
                .map(|a| serde_dynamo::from_item(a).map_err(serde_err))
                .transpose(),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(None),
                e => Err(dynamo(e)),
            },
        }
    }

    /// Records that the refresh token of `version` is about to be sent to Zoom.
    /// False if the lease is no longer ours.
    pub async fn set_refresh_pending(
        &self,
        account: &PortalAccountId,
        owner: &str,
        epoch: u64,
        version: u64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression("SET refresh_pending = :v")
            .condition_expression("lease_owner = :o AND lease_epoch = :e AND token_version = :v")
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":e", AttributeValue::N(epoch.to_string()))
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// Gives the lease back (and clears a pending mark: Zoom did not rotate).
    pub async fn release_lease(
        &self,
        account: &PortalAccountId,
        owner: &str,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression("REMOVE lease_owner, lease_until, refresh_pending")
            .condition_expression("lease_owner = :o AND lease_epoch = :e")
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":e", AttributeValue::N(epoch.to_string()))
            .send()
            .await;
        conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })
        .map(|_| ())
    }

    /// Compare-and-swap of a refreshed pair: only if the stored version and the
    /// spent refresh token are the ones this refresh started from. Releases the
    /// lease. False if the condition failed.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_refreshed(
        &self,
        account: &PortalAccountId,
        expected_version: u64,
        spent_hash: &str,
        sealed: &str,
        new_hash: &str,
        access_expires_at: i64,
        due_at: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression(
                "SET tokens = :t, access_expires_at = :x, token_version = :nv, \
                 refresh_hash = :nh, refreshed_at = :now, gsi1sk = :due, updated_at = :ts \
                 REMOVE lease_owner, lease_until, refresh_pending",
            )
            .condition_expression(
                "token_version = :v AND refresh_hash = :spent AND #st = :verified",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":t", AttributeValue::S(sealed.to_owned()))
            .expression_attribute_values(":x", AttributeValue::N(access_expires_at.to_string()))
            .expression_attribute_values(
                ":nv",
                AttributeValue::N((expected_version + 1).to_string()),
            )
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .expression_attribute_values(":nh", AttributeValue::S(new_hash.to_owned()))
            .expression_attribute_values(":spent", AttributeValue::S(spent_hash.to_owned()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.unix_timestamp().to_string()),
            )
            .expression_attribute_values(":due", AttributeValue::N(due_at.to_string()))
            .expression_attribute_values(":ts", AttributeValue::S(rfc3339(now)))
            .expression_attribute_values(":verified", AttributeValue::S("verified".into()))
            .send()
            .await;
        conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// The grant is gone at Zoom (or its state is unknown): status
    /// `needs_reauth` with a reason, tokens deleted, audit written — only if
    /// the connection is still at `expected_version`. False otherwise.
    pub async fn mark_needs_reauth(
        &self,
        account: &PortalAccountId,
        expected_version: u64,
        reason: &str,
        audit: &AuditItem,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression(
                "SET #st = :nr, status_reason = :r, updated_at = :ts \
                 REMOVE tokens, access_expires_at, refresh_hash, lease_owner, lease_until, \
                 refresh_pending, gsi1pk, gsi1sk",
            )
            .condition_expression("token_version = :v AND #st = :verified")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":nr", AttributeValue::S("needs_reauth".into()))
            .expression_attribute_values(":r", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":ts", AttributeValue::S(rfc3339(now)))
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .expression_attribute_values(":verified", AttributeValue::S("verified".into()))
            .build()
            .map_err(dynamo)?;
        self.transact_with_audit(update, audit).await
    }

    /// Zoom says the app was removed: `disconnected`, tokens deleted at once,
    /// the purge of the account's Zoom data scheduled. Only while the
    /// connection still belongs to `zoom`. False if it does not.
    pub async fn mark_disconnected(
        &self,
        account: &PortalAccountId,
        zoom: &ZoomAccountId,
        purge_after: Option<i64>,
        audit: &AuditItem,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut b = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .condition_expression("zoom_account_id = :z")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":z", AttributeValue::S(zoom.to_string()))
            .expression_attribute_values(":dc", AttributeValue::S("disconnected".into()))
            .expression_attribute_values(":r", AttributeValue::S("app_deauthorized".into()))
            .expression_attribute_values(":ts", AttributeValue::S(rfc3339(now)));
        const GONE: &str = "REMOVE tokens, access_expires_at, refresh_hash, lease_owner, \
                            lease_until, refresh_pending, pending_until, pending_state";
        b = match purge_after {
            Some(p) => b
                .update_expression(format!(
                    "SET #st = :dc, status_reason = :r, updated_at = :ts, purge_after = :p, \
                     gsi1pk = :pk, gsi1sk = :p {GONE}"
                ))
                .expression_attribute_values(":p", AttributeValue::N(p.to_string()))
                .expression_attribute_values(":pk", AttributeValue::S(purge_partition(account))),
            None => b.update_expression(format!(
                "SET #st = :dc, status_reason = :r, updated_at = :ts {GONE}, gsi1pk, gsi1sk, purge_after"
            )),
        };
        self.transact_with_audit(b.build().map_err(dynamo)?, audit)
            .await
    }

    async fn transact_with_audit(
        &self,
        update: aws_sdk_dynamodb::types::Update,
        audit: &AuditItem,
    ) -> Result<bool, StoreError> {
        let put_audit = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(audit).map_err(serde_err)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(dynamo)?;
        let r = self
            .client()
            .await
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put_audit).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed") =>
                {
                    Ok(false)
                }
                e => Err(dynamo(e)),
            },
        }
    }

    /// Portal accounts whose due time in `partition` is at most `until`.
    pub async fn due_accounts(
        &self,
        partition: &str,
        until: i64,
    ) -> Result<Vec<PortalAccountId>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .await
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :u")
                .expression_attribute_values(":pk", AttributeValue::S(partition.to_owned()))
                .expression_attribute_values(":u", AttributeValue::N(until.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            for item in page.items.unwrap_or_default() {
                if let Some(AttributeValue::S(pk)) = item.get("PK")
                    && let Some(id) = pk.strip_prefix("ACCOUNT#")
                    && let Ok(id) = PortalAccountId::parse(id)
                {
                    out.push(id);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Records a number event (CNAM or emergency address) for a number,
    /// unless a newer one is already stored. False if it was older.
    pub async fn put_number_event(
        &self,
        account: &PortalAccountId,
        number: &crate::ids::E164Number,
        kind: &str,
        value: AttributeValue,
        event_ts: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), &format!("ZNUM#{number}"))))
            .update_expression("SET #v = :v, #ts = :ts, #num = :n")
            .condition_expression("attribute_not_exists(#ts) OR #ts < :ts")
            .expression_attribute_names("#v", kind)
            .expression_attribute_names("#ts", format!("{kind}_event_ts"))
            .expression_attribute_names("#num", "number")
            .expression_attribute_values(":v", value)
            .expression_attribute_values(":ts", AttributeValue::N(event_ts.to_string()))
            .expression_attribute_values(":n", AttributeValue::S(number.to_string()))
            .send()
            .await;
        conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// Items of the account whose sort key starts with `prefix`.
    pub async fn account_items(
        &self,
        account: &PortalAccountId,
        prefix: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .await
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .expression_attribute_values(":pk", AttributeValue::S(account_pk(account)))
                .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Removes a deauthorized account's Zoom data once its retention is over:
    /// number-event items, the Zoom-account claim, and the Zoom fields of the
    /// connection. The audit trail stays. False if not (or no longer) due.
    pub async fn purge_zoom_data(
        &self,
        account: &PortalAccountId,
        audit: &AuditItem,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(conn) = self.get_connection(account).await? else {
            return Ok(false);
        };
        let due = conn.status == ConnectionStatus::Disconnected
            && conn.purge_after.is_some_and(|p| p <= now.unix_timestamp());
        if !due {
            return Ok(false);
        }
        for item in self.account_items(account, "ZNUM#").await? {
            let Some(AttributeValue::S(sk)) = item.get("SK") else {
                continue;
            };
            self.client()
                .await
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(account_pk(account), sk)))
                .send()
                .await
                .map_err(dynamo)?;
        }
        if let Some(zoom) = &conn.zoom_account_id {
            let r = self
                .client()
                .await
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(format!("ZOOM#{zoom}"), "OWNER")))
                .condition_expression("portal_account_id = :a")
                .expression_attribute_values(":a", AttributeValue::S(account.to_string()))
                .send()
                .await;
            conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
                e.is_conditional_check_failed_exception()
            })?;
        }
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(account_pk(account), CONNECTION_SK)))
            .update_expression(
                "SET purged_at = :ts, updated_at = :ts \
                 REMOVE zoom_account_id, scopes, authorization_code, verified_by, purge_after, gsi1pk, gsi1sk",
            )
            .condition_expression("#st = :dc AND purge_after <= :now")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":dc", AttributeValue::S("disconnected".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()))
            .expression_attribute_values(":ts", AttributeValue::S(rfc3339(now)))
            .build()
            .map_err(dynamo)?;
        self.transact_with_audit(update, audit).await
    }

    /// Records a webhook delivery key (TTL'd). False if it was already there.
    pub async fn record_delivery(&self, key_hash: &str, ttl: i64) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("PK", AttributeValue::S(format!("EVENT#{key_hash}")))
            .item("SK", AttributeValue::S("EVENT".into()))
            .item("ttl", AttributeValue::N(ttl.to_string()))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// Forgets a delivery key (the action failed: let Zoom's retry act).
    pub async fn forget_delivery(&self, key_hash: &str) -> Result<(), StoreError> {
        self.client()
            .await
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("EVENT#{key_hash}"), "EVENT")))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    pub async fn put_audit(&self, audit: &AuditItem) -> Result<(), StoreError> {
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(audit).map_err(serde_err)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    pub async fn list_audit(
        &self,
        account: &PortalAccountId,
    ) -> Result<Vec<AuditItem>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .await
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .expression_attribute_values(":pk", AttributeValue::S(account_pk(account)))
                .expression_attribute_values(":p", AttributeValue::S("AUDIT#".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(dynamo)?;
            for i in page.items.unwrap_or_default() {
                out.push(serde_dynamo::from_item(i).map_err(serde_err)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}
