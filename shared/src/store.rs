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

fn dynamo<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Dynamo(DisplayErrorContext(e).to_string())
}
fn serde_err(e: serde_dynamo::Error) -> StoreError {
    StoreError::Serde(e.to_string())
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
    pub updated_at: String,
}

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
    client: Client,
    table: String,
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("PK".to_owned(), AttributeValue::S(pk)),
        ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

impl Store {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn state_pk(state_hash: &str) -> String {
        format!("STATE#{state_hash}")
    }

    pub async fn put_state(&self, item: &StateItem) -> Result<(), StoreError> {
        self.client
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
            .client
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
        self.client
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
            .client
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
            .client
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
            .client
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
            .client
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

    pub async fn put_audit(&self, audit: &AuditItem) -> Result<(), StoreError> {
        self.client
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
                .client
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
