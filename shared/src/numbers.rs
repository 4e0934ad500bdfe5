//! Numbers: order from the carrier's inventory or upload, push into the
//! customer's Zoom account (Provider Exchange peering numbers), provision
//! (assign/unassign), port out or release — and the removal check.
//!
//! Items (one table, see docs/ARCHITECTURE.md):
//! `INVENTORY#<area>`/`<e164>` carrier inventory; `E164#<e164>`/`OWNER` which
//! tenant holds a number; `ACCOUNT#<a>`/`NUMBER#<e164>` our record;
//! `ACCOUNT#<a>`/`OP#<id>` an operation, `ACCOUNT#<a>`/`OPR#<id>#<e164>` its
//! per-number results.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::context::AppContext;
use crate::http::Problem;
use crate::ids::{E164Number, PortalAccountId};
use crate::store::{
    AuditItem, ConnectionStatus, StoreError, account_pk, conditional, dynamo, key, serde_err,
};
use crate::zoom_api::{self, ApiError, Label};

/// Largest batch Zoom takes on the peering endpoints.
pub const PEERING_BATCH: usize = 200;
/// Largest upload accepted in one request.
pub const MAX_UPLOAD: usize = 10_000;
/// Largest order by quantity.
pub const MAX_ORDER: u32 = 100;
/// Number records written at once by the worker.
const RECORD_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NumberState {
    Reserved,
    Uploaded,
    Pushing,
    InZoom,
    PushFailed,
    PortOutScheduled,
    PortedOut,
    ReleaseRequested,
    Released,
}

impl NumberState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Uploaded => "uploaded",
            Self::Pushing => "pushing",
            Self::InZoom => "in_zoom",
            Self::PushFailed => "push_failed",
            Self::PortOutScheduled => "port_out_scheduled",
            Self::PortedOut => "ported_out",
            Self::ReleaseRequested => "release_requested",
            Self::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    /// The lifecycle: every other move is refused.
    pub fn can_become(self, to: Self) -> bool {
        use NumberState::*;
        matches!(
            (self, to),
            (Reserved | Uploaded | PushFailed, Pushing)
                | (Pushing, InZoom | PushFailed)
                | (InZoom, PortOutScheduled | ReleaseRequested)
                | (PortOutScheduled, InZoom | PortedOut)
                | (ReleaseRequested, Released | InZoom)
                | (Reserved | Uploaded | PushFailed, Released)
                // Drift found by reconciliation: gone from Zoom behind our back.
                | (InZoom | PortOutScheduled, PushFailed)
        )
    }

    /// Still counts as the carrier's number in the customer's Zoom account.
    pub fn in_zoom(self) -> bool {
        matches!(
            self,
            Self::InZoom | Self::PortOutScheduled | Self::ReleaseRequested
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NumbersError {
    #[error("the account is not verified with Zoom")]
    NotConnected,
    #[error("{detail}")]
    Invalid { field: String, detail: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{number} cannot go from {from} to {to}")]
    IllegalTransition {
        number: String,
        from: &'static str,
        to: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("queue: {0}")]
    Queue(String),
}

impl NumbersError {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            Self::NotConnected => Problem::new(
                409,
                "Not connected",
                "verify the account with Zoom first (Install & Configure)",
            ),
            Self::Invalid { field, detail } => Problem::bad_request(field, detail.clone()),
            Self::NotFound(what) => Problem::not_found(format!("{what} not found")),
            Self::Conflict(d) => Problem::new(409, "Conflict", d.clone()),
            Self::IllegalTransition { .. } => Problem::new(409, "Conflict", self.to_string()),
            Self::Api(ApiError::Token(
                crate::tokens::TokenError::NeedsReauth { .. }
                | crate::tokens::TokenError::NotConnected,
            )) => Problem::new(
                409,
                "Not connected",
                "Zoom no longer accepts the grant: run Install & Configure again",
            ),
            Self::Api(ApiError::RateLimited | ApiError::BreakerOpen) => {
                Problem::unavailable("Zoom is busy for this account; try again shortly")
            }
            Self::Api(ApiError::Zoom {
                status, message, ..
            }) if *status < 500 => {
                tracing::warn!(status, message = %message, "Zoom refused a request");
                Problem::new(422, "Zoom refused the request", message.clone())
            }
            other => {
                tracing::error!(error = %other, "numbers request failed");
                Problem::internal()
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    pub at: String,
    pub from: String,
    pub to: String,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub number: E164Number,
    pub state: NumberState,
    /// `order` (from inventory) or `upload`.
    pub source: String,
    #[serde(default)]
    pub porting_in: bool,
    /// Zoom's `status`: false while porting in, true once active.
    #[serde(default)]
    pub zoom_active: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub billing_ref_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub operation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port_out_date: Option<String>,
    #[serde(default)]
    pub unassign_on_port_day: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    /// Port-day job index (DueIndex) while a port-day unassignment is pending.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1sk: Option<i64>,
    /// Every state change, with who made it.
    #[serde(default)]
    pub history: Vec<Transition>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Order,
    Upload,
    Release,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub operation_id: String,
    pub kind: OpKind,
    /// queued | running | succeeded | partially_failed | failed
    pub state: String,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub pending: u64,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    /// `OPS#<shard>` while queued or running (DueIndex), so reconciliation
    /// finds an operation whose message was lost.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1pk: Option<String>,
    /// Heartbeat: when it counts as stale (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi1sk: Option<i64>,
}

/// An operation with no progress for this long is sent to the worker again.
pub const STALE_OPERATION_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpResult {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub number: E164Number,
    /// pending | pushing | succeeded | failed
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub porting_in: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub billing_ref_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_info: Option<String>,
}

fn number_sk(n: &E164Number) -> String {
    format!("NUMBER#{n}")
}

pub fn area_code(n: &E164Number) -> String {
    let d = &n.as_str()[1..];
    if let Some(rest) = d.strip_prefix('1') {
        rest[..3].to_owned()
    } else {
        d[..3].to_owned()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Opaque cursor over a DynamoDB `LastEvaluatedKey` of string attributes.
pub fn encode_cursor(k: &HashMap<String, AttributeValue>) -> String {
    let m: BTreeMap<&str, &str> = k
        .iter()
        .filter_map(|(a, v)| v.as_s().ok().map(|s| (a.as_str(), s.as_str())))
        .collect();
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&m).unwrap_or_default())
}

pub fn decode_cursor(c: &str) -> Result<HashMap<String, AttributeValue>, NumbersError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| NumbersError::invalid("cursor", "not a cursor from this API"))?;
    let m: BTreeMap<String, String> = serde_json::from_slice(&bytes)
        .map_err(|_| NumbersError::invalid("cursor", "not a cursor from this API"))?;
    Ok(m.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// The verified Zoom account id of the Portal account.
pub async fn zoom_account(
    ctx: &AppContext,
    account: &PortalAccountId,
) -> Result<String, NumbersError> {
    match ctx.store.get_connection(account).await? {
        Some(c) if c.status == ConnectionStatus::Verified => c
            .zoom_account_id
            .map(|z| z.to_string())
            .ok_or(NumbersError::NotConnected),
        _ => Err(NumbersError::NotConnected),
    }
}

/// One audit record for the account, now.
async fn audit(
    ctx: &AppContext,
    account: &PortalAccountId,
    action: impl AsRef<str>,
    actor: &str,
    detail: String,
) -> Result<(), NumbersError> {
    let item = AuditItem::new(
        account,
        ctx.clock.now(),
        action.as_ref(),
        actor,
        Some(detail),
    );
    Ok(ctx.store.put_audit(&item).await?)
}

// ---------- inventory ----------

#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub already_present: usize,
    pub errors: Vec<RowError>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub error: String,
}

/// Carrier: loads available numbers (CSV with a `number` column).
pub async fn import_inventory(ctx: &AppContext, csv: &str) -> Result<ImportReport, NumbersError> {
    let rows = parse_csv(csv, &["number"])?;
    let mut report = ImportReport::default();
    let mut areas = HashSet::new();
    for (row, cols) in rows {
        let raw = cols.get("number").cloned().unwrap_or_default();
        let Ok(num) = E164Number::parse(raw.trim()) else {
            report.errors.push(RowError {
                row,
                number: Some(raw),
                error: "not an E.164 number".into(),
            });
            continue;
        };
        let area = area_code(&num);
        let r = ctx
            .store
            .client()
            .await
            .put_item()
            .table_name(ctx.store.table())
            .item("PK", s(format!("INVENTORY#{area}")))
            .item("SK", s(num.to_string()))
            .item("number", s(num.to_string()))
            .item("status", s("available"))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        if conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
            e.is_conditional_check_failed_exception()
        })? {
            report.added += 1;
            areas.insert(area);
        } else {
            report.already_present += 1;
        }
    }
    if !areas.is_empty() {
        ctx.store
            .client()
            .await
            .update_item()
            .table_name(ctx.store.table())
            .set_key(Some(key("INVENTORY".into(), "AREAS")))
            .update_expression("ADD areas :a")
            .expression_attribute_values(":a", AttributeValue::Ss(areas.into_iter().collect()))
            .send()
            .await
            .map_err(dynamo)?;
    }
    Ok(report)
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Available inventory numbers in an area code.
pub async fn list_inventory(
    ctx: &AppContext,
    area: &str,
    limit: i32,
    cursor: Option<&str>,
) -> Result<Page<String>, NumbersError> {
    if area.len() != 3 || !area.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumbersError::invalid("area_code", "three digits, e.g. 617"));
    }
    let out = ctx
        .store
        .client()
        .await
        .query()
        .table_name(ctx.store.table())
        .key_condition_expression("PK = :pk")
        .filter_expression("#st = :av")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":pk", s(format!("INVENTORY#{area}")))
        .expression_attribute_values(":av", s("available"))
        .limit(limit)
        .set_exclusive_start_key(cursor.map(decode_cursor).transpose()?)
        .send()
        .await
        .map_err(dynamo)?;
    Ok(Page {
        items: out
            .items()
            .iter()
            .filter_map(|i| i.get("number").and_then(|v| v.as_s().ok()).cloned())
            .collect(),
        next_cursor: out
            .last_evaluated_key()
            .filter(|k| !k.is_empty())
            .map(encode_cursor),
    })
}

// ---------- CSV ----------

/// CSV data rows: (1-based row number, column → value).
pub type CsvRows = Vec<(usize, HashMap<String, String>)>;

/// A small CSV reader: header row, comma separated, optional double quotes.
/// Returns (1-based data row number, column → value).
pub fn parse_csv(text: &str, required: &[&str]) -> Result<CsvRows, NumbersError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split_csv_line(
        lines
            .next()
            .ok_or_else(|| NumbersError::invalid("body", "CSV is empty"))?,
    )
    .into_iter()
    .map(|h| h.trim().to_ascii_lowercase())
    .collect();
    for r in required {
        if !header.iter().any(|h| h == r) {
            return Err(NumbersError::invalid(
                "body",
                format!("CSV header must name a `{r}` column"),
            ));
        }
    }
    Ok(lines
        .enumerate()
        .map(|(i, l)| {
            let cols = split_csv_line(l);
            (i + 1, header.iter().cloned().zip(cols).collect())
        })
        .collect())
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_owned()).collect()
}

// ---------- operations ----------

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub number: E164Number,
    pub porting_in: bool,
    pub billing_ref_id: Option<String>,
    pub service_info: Option<String>,
}

/// Rows of an upload as sent (JSON or CSV), before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUploadRow {
    pub number: String,
    #[serde(default)]
    pub porting_in: bool,
    #[serde(default)]
    pub billing_ref_id: Option<String>,
    #[serde(default)]
    pub service_info: Option<String>,
}

/// Validates every row: E.164, duplicates, field lengths. Good rows and
/// per-row errors (1-based rows).
pub fn validate_rows(rows: Vec<RawUploadRow>) -> (Vec<UploadRow>, Vec<RowError>) {
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        let row = i + 1;
        let Ok(num) = E164Number::parse(r.number.trim()) else {
            errors.push(RowError {
                row,
                number: Some(r.number),
                error: "not an E.164 number (+ and 8 to 15 digits)".into(),
            });
            continue;
        };
        if !seen.insert(num.clone()) {
            errors.push(RowError {
                row,
                number: Some(num.to_string()),
                error: "duplicate of an earlier row".into(),
            });
            continue;
        }
        if r.billing_ref_id.as_ref().is_some_and(|b| b.len() > 60) {
            errors.push(RowError {
                row,
                number: Some(num.to_string()),
                error: "billing_ref_id is longer than 60 characters".into(),
            });
            continue;
        }
        if r.service_info.as_ref().is_some_and(|b| b.len() > 255) {
            errors.push(RowError {
                row,
                number: Some(num.to_string()),
                error: "service_info is longer than 255 characters".into(),
            });
            continue;
        }
        good.push(UploadRow {
            number: num,
            porting_in: r.porting_in,
            billing_ref_id: r.billing_ref_id,
            service_info: r.service_info,
        });
    }
    (good, errors)
}

/// Which of `numbers` another tenant holds.
async fn held_elsewhere(
    ctx: &AppContext,
    account: &PortalAccountId,
    numbers: &[E164Number],
) -> Result<HashSet<E164Number>, NumbersError> {
    let mut out = HashSet::new();
    for chunk in numbers.chunks(100) {
        let keys: Vec<_> = chunk
            .iter()
            .map(|n| key(format!("E164#{n}"), "OWNER"))
            .collect();
        let mut req = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(dynamo)?;
        loop {
            let r = ctx
                .store
                .client()
                .await
                .batch_get_item()
                .request_items(ctx.store.table(), req)
                .send()
                .await
                .map_err(dynamo)?;
            for item in r
                .responses()
                .and_then(|m| m.get(ctx.store.table()))
                .into_iter()
                .flatten()
            {
                let owner = item.get("portal_account_id").and_then(|v| v.as_s().ok());
                let num = item
                    .get("number")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|n| E164Number::parse(n).ok());
                if let (Some(o), Some(num)) = (owner, num)
                    && o != account.as_str()
                {
                    out.insert(num);
                }
            }
            match r
                .unprocessed_keys()
                .and_then(|m| m.get(ctx.store.table()))
                .cloned()
            {
                Some(k) if !k.keys().is_empty() => req = k,
                _ => break,
            }
        }
    }
    Ok(out)
}

async fn batch_put<T: Serialize>(ctx: &AppContext, items: &[T]) -> Result<(), NumbersError> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let mut reqs = Vec::new();
        for it in chunk {
            let item = serde_dynamo::to_item(it).map_err(serde_err)?;
            reqs.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(dynamo)?,
                    )
                    .build(),
            );
        }
        let mut pending = HashMap::from([(ctx.store.table().to_owned(), reqs)]);
        let mut attempt = 0;
        while !pending.is_empty() {
            let r = ctx
                .store
                .client()
                .await
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(dynamo)?;
            pending = r
                .unprocessed_items
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            attempt += 1;
            if !pending.is_empty() {
                tokio::time::sleep(zoom_api::backoff(attempt.min(5))).await;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub operation_id: String,
    pub total: usize,
    pub rejected: Vec<RowError>,
}

async fn create_operation(
    ctx: &AppContext,
    account: &PortalAccountId,
    kind: OpKind,
    actor: &str,
    results: Vec<OpResult>,
) -> Result<String, NumbersError> {
    let op_id = ulid::Ulid::new().to_string();
    let now = rfc3339(ctx.clock.now());
    let pk = account_pk(account);
    let results: Vec<OpResult> = results
        .into_iter()
        .map(|mut r| {
            r.pk = pk.clone();
            r.sk = format!("OPR#{op_id}#{}", r.number);
            r
        })
        .collect();
    let pending = results.iter().filter(|r| r.result == "pending").count() as u64;
    let failed = results.iter().filter(|r| r.result == "failed").count() as u64;
    batch_put(ctx, &results).await?;
    let op = OperationItem {
        pk,
        sk: format!("OP#{op_id}"),
        operation_id: op_id.clone(),
        kind,
        state: if pending == 0 {
            "failed".into()
        } else {
            "queued".into()
        },
        total: results.len() as u64,
        succeeded: 0,
        failed,
        pending,
        created_at: now.clone(),
        updated_at: now,
        created_by: actor.to_owned(),
        gsi1pk: (pending > 0).then(|| format!("OPS#{}", crate::store::due_shard(account))),
        gsi1sk: (pending > 0).then(|| ctx.clock.now().unix_timestamp() + STALE_OPERATION_SECS),
    };
    ctx.store
        .client()
        .await
        .put_item()
        .table_name(ctx.store.table())
        .set_item(Some(serde_dynamo::to_item(&op).map_err(serde_err)?))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await
        .map_err(dynamo)?;
    audit(
        ctx,
        account,
        format!("numbers_{}_requested", kind_str(kind)),
        actor,
        format!("operation={op_id}; numbers={}", op.total),
    )
    .await?;
    if pending > 0 {
        enqueue(ctx, account, &op_id).await?;
    }
    Ok(op_id)
}

fn kind_str(k: OpKind) -> &'static str {
    match k {
        OpKind::Order => "order",
        OpKind::Upload => "upload",
        OpKind::Release => "release",
    }
}

/// The message the worker gets.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkMessage {
    pub account: PortalAccountId,
    pub operation_id: String,
}

async fn enqueue(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
) -> Result<(), NumbersError> {
    let url = ctx
        .config
        .number_queue_url
        .as_deref()
        .ok_or_else(|| NumbersError::Queue("NUMBER_QUEUE_URL is not set".into()))?;
    let body = serde_json::to_string(&WorkMessage {
        account: account.clone(),
        operation_id: op_id.to_owned(),
    })
    .map_err(|e| NumbersError::Queue(e.to_string()))?;
    ctx.sqs()
        .await
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| NumbersError::Queue(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

fn result(number: E164Number, res: &str, reason: Option<String>) -> OpResult {
    OpResult {
        pk: String::new(),
        sk: String::new(),
        number,
        result: res.into(),
        reason,
        porting_in: false,
        billing_ref_id: None,
        service_info: None,
    }
}

/// Upload: validates every row, refuses numbers another tenant holds, and
/// queues the good rows (all rows refused when `all_or_nothing` and any is bad).
pub async fn upload(
    ctx: &AppContext,
    account: &PortalAccountId,
    actor: &str,
    rows: Vec<RawUploadRow>,
    all_or_nothing: bool,
) -> Result<Accepted, NumbersError> {
    zoom_account(ctx, account).await?;
    if rows.is_empty() {
        return Err(NumbersError::invalid("numbers", "no numbers given"));
    }
    if rows.len() > MAX_UPLOAD {
        return Err(NumbersError::invalid(
            "numbers",
            format!("at most {MAX_UPLOAD} numbers per upload"),
        ));
    }
    let (good, mut rejected) = validate_rows(rows);
    let nums: Vec<E164Number> = good.iter().map(|r| r.number.clone()).collect();
    let elsewhere = held_elsewhere(ctx, account, &nums).await?;
    let mut ok = Vec::new();
    for (i, r) in good.into_iter().enumerate() {
        if elsewhere.contains(&r.number) {
            rejected.push(RowError {
                row: i + 1,
                number: Some(r.number.to_string()),
                error: "held by another account".into(),
            });
        } else {
            ok.push(r);
        }
    }
    rejected.sort_by_key(|e| e.row);
    if all_or_nothing && !rejected.is_empty() {
        return Err(NumbersError::Invalid {
            field: "numbers".into(),
            detail: format!(
                "{} rows are invalid and all_or_nothing is set; nothing was queued: {}",
                rejected.len(),
                serde_json::to_string(&rejected).unwrap_or_default()
            ),
        });
    }
    if ok.is_empty() {
        return Err(NumbersError::Invalid {
            field: "numbers".into(),
            detail: format!(
                "no valid rows: {}",
                serde_json::to_string(&rejected).unwrap_or_default()
            ),
        });
    }
    let results: Vec<OpResult> = ok
        .into_iter()
        .map(|r| OpResult {
            pk: String::new(),
            sk: String::new(),
            number: r.number,
            result: "pending".into(),
            reason: None,
            porting_in: r.porting_in,
            billing_ref_id: r.billing_ref_id,
            service_info: r.service_info,
        })
        .collect();
    let total = results.len();
    let op = create_operation(ctx, account, OpKind::Upload, actor, results).await?;
    Ok(Accepted {
        operation_id: op,
        total,
        rejected,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    #[serde(default)]
    pub numbers: Option<Vec<String>>,
    #[serde(default)]
    pub area_code: Option<String>,
    #[serde(default)]
    pub quantity: Option<u32>,
}

/// Reserves one inventory number for the account, atomically: the inventory
/// flips to reserved, the tenant claim and our record are written, or nothing.
async fn reserve(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<Option<&'static str>, NumbersError> {
    let now = ctx.clock.now();
    let item = NumberItem {
        pk: account_pk(account),
        sk: number_sk(num),
        number: num.clone(),
        state: NumberState::Reserved,
        source: "order".into(),
        porting_in: false,
        zoom_active: true,
        billing_ref_id: None,
        service_info: None,
        operation_id: None,
        port_out_date: None,
        unassign_on_port_day: false,
        last_error: None,
        gsi1pk: None,
        gsi1sk: None,
        history: vec![Transition {
            at: rfc3339(now),
            from: "inventory".into(),
            to: "reserved".into(),
            actor: actor.into(),
        }],
        updated_at: rfc3339(now),
    };
    let inv = Update::builder()
        .table_name(ctx.store.table())
        .set_key(Some(key(
            format!("INVENTORY#{}", area_code(num)),
            num.as_str(),
        )))
        .update_expression("SET #st = :r, reserved_by = :a")
        .condition_expression("#st = :av")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":r", s("reserved"))
        .expression_attribute_values(":av", s("available"))
        .expression_attribute_values(":a", s(account.to_string()))
        .build()
        .map_err(dynamo)?;
    let claim = Put::builder()
        .table_name(ctx.store.table())
        .item("PK", s(format!("E164#{num}")))
        .item("SK", s("OWNER"))
        .item("portal_account_id", s(account.to_string()))
        .item("number", s(num.to_string()))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .map_err(dynamo)?;
    let rec = Put::builder()
        .table_name(ctx.store.table())
        .set_item(Some(serde_dynamo::to_item(&item).map_err(serde_err)?))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .map_err(dynamo)?;
    let r = ctx
        .store
        .client()
        .await
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(inv).build())
        .transact_items(TransactWriteItem::builder().put(claim).build())
        .transact_items(TransactWriteItem::builder().put(rec).build())
        .send()
        .await;
    match r {
        Ok(_) => Ok(None),
        Err(e) => match e.into_service_error() {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                let codes: Vec<Option<&str>> = c.cancellation_reasons().iter().map(|r| r.code()).collect();
                if codes.first().copied().flatten() == Some("ConditionalCheckFailed") {
                    Ok(Some("not_available"))
                } else {
                    Ok(Some("held_by_another_account"))
                }
            }
            e => Err(dynamo(e).into()),
        },
    }
}

pub async fn order(
    ctx: &AppContext,
    account: &PortalAccountId,
    actor: &str,
    req: OrderRequest,
) -> Result<Accepted, NumbersError> {
    zoom_account(ctx, account).await?;
    let mut results = Vec::new();
    match (req.numbers, req.area_code, req.quantity) {
        (Some(list), None, None) => {
            if list.is_empty() || list.len() > MAX_ORDER as usize {
                return Err(NumbersError::invalid(
                    "numbers",
                    format!("give 1 to {MAX_ORDER} numbers"),
                ));
            }
            let mut seen = HashSet::new();
            let mut parsed = Vec::new();
            for (i, raw) in list.iter().enumerate() {
                let num = E164Number::parse(raw)
                    .map_err(|e| NumbersError::invalid(&format!("numbers[{i}]"), e.to_string()))?;
                if !seen.insert(num.clone()) {
                    return Err(NumbersError::invalid(
                        &format!("numbers[{i}]"),
                        format!("{num} is listed twice"),
                    ));
                }
                parsed.push(num);
            }
            for num in parsed {
                match reserve(ctx, account, &num, actor).await? {
                    None => results.push(result(num, "pending", None)),
                    Some(why) => results.push(result(num, "failed", Some(why.into()))),
                }
            }
        }
        (None, Some(area), Some(qty)) => {
            if qty == 0 || qty > MAX_ORDER {
                return Err(NumbersError::invalid(
                    "quantity",
                    format!("1 to {MAX_ORDER}"),
                ));
            }
            let mut cursor: Option<String> = None;
            let mut got = 0;
            'fill: loop {
                let page = list_inventory(ctx, &area, 100, cursor.as_deref()).await?;
                for raw in &page.items {
                    let Ok(num) = E164Number::parse(raw) else {
                        continue;
                    };
                    if reserve(ctx, account, &num, actor).await?.is_none() {
                        results.push(result(num, "pending", None));
                        got += 1;
                        if got == qty {
                            break 'fill;
                        }
                    }
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if got == 0 {
                return Err(NumbersError::Conflict(format!(
                    "no numbers are available in area code {area}"
                )));
            }
        }
        _ => {
            return Err(NumbersError::invalid(
                "body",
                "give either `numbers` or `area_code` with `quantity`",
            ));
        }
    }
    let total = results.len();
    let rejected = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.result == "failed")
        .map(|(i, r)| RowError {
            row: i + 1,
            number: Some(r.number.to_string()),
            error: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    let op = create_operation(ctx, account, OpKind::Order, actor, results).await?;
    Ok(Accepted {
        operation_id: op,
        total,
        rejected,
    })
}

pub async fn get_operation(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
) -> Result<OperationItem, NumbersError> {
    if op_id.len() != 26 || !op_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(NumbersError::invalid("operation_id", "not an operation id"));
    }
    let out = ctx
        .store
        .client()
        .await
        .get_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(account_pk(account), &format!("OP#{op_id}"))))
        .consistent_read(true)
        .send()
        .await
        .map_err(dynamo)?;
    let item = out
        .item
        .ok_or_else(|| NumbersError::NotFound("operation".into()))?;
    Ok(serde_dynamo::from_item(item).map_err(serde_err)?)
}

pub async fn operation_results(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
    limit: i32,
    cursor: Option<&str>,
) -> Result<Page<OpResult>, NumbersError> {
    let out = ctx
        .store
        .client()
        .await
        .query()
        .table_name(ctx.store.table())
        .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
        .expression_attribute_values(":pk", s(account_pk(account)))
        .expression_attribute_values(":p", s(format!("OPR#{op_id}#")))
        .limit(limit)
        .consistent_read(true)
        .set_exclusive_start_key(cursor.map(decode_cursor).transpose()?)
        .send()
        .await
        .map_err(dynamo)?;
    let items = out
        .items()
        .iter()
        .map(|i| serde_dynamo::from_item(i.clone()).map_err(serde_err))
        .collect::<Result<Vec<OpResult>, _>>()?;
    Ok(Page {
        items,
        next_cursor: out
            .last_evaluated_key()
            .filter(|k| !k.is_empty())
            .map(encode_cursor),
    })
}

async fn all_results(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
) -> Result<Vec<OpResult>, NumbersError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = operation_results(ctx, account, op_id, 1000, cursor.as_deref()).await?;
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Re-drives only the failed numbers of an operation.
pub async fn retry_operation(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
    actor: &str,
) -> Result<OperationItem, NumbersError> {
    let op = get_operation(ctx, account, op_id).await?;
    if matches!(op.state.as_str(), "queued" | "running") {
        return Err(NumbersError::Conflict(
            "the operation is still running".into(),
        ));
    }
    let failed: Vec<OpResult> = all_results(ctx, account, op_id)
        .await?
        .into_iter()
        .filter(|r| r.result == "failed")
        .collect();
    if failed.is_empty() {
        return Err(NumbersError::Conflict(
            "the operation has no failed numbers".into(),
        ));
    }
    let again: Vec<OpResult> = failed
        .into_iter()
        .map(|mut r| {
            r.result = "pending".into();
            r.reason = None;
            r
        })
        .collect();
    batch_put(ctx, &again).await?;
    // Order results that failed at reservation have no record: they cannot be re-driven by the worker alone.
    set_op(ctx, account, op_id, "queued", Some(&op.state)).await?;
    audit(
        ctx,
        account,
        "numbers_operation_retried",
        actor,
        format!("operation={op_id}; numbers={}", again.len()),
    )
    .await?;
    enqueue(ctx, account, op_id).await?;
    get_operation(ctx, account, op_id).await
}

async fn set_op(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
    state: &str,
    expect: Option<&str>,
) -> Result<bool, NumbersError> {
    let active = matches!(state, "queued" | "running");
    let now = ctx.clock.now();
    let mut b = ctx
        .store
        .client()
        .await
        .update_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(account_pk(account), &format!("OP#{op_id}"))))
        .expression_attribute_names("#st", "state")
        .expression_attribute_values(":s", s(state))
        .expression_attribute_values(":t", s(rfc3339(now)));
    b = if active {
        b.update_expression("SET #st = :s, updated_at = :t, gsi1pk = :pk, gsi1sk = :due")
            .expression_attribute_values(
                ":pk",
                s(format!("OPS#{}", crate::store::due_shard(account))),
            )
            .expression_attribute_values(":due", n(now.unix_timestamp() + STALE_OPERATION_SECS))
    } else {
        b.update_expression("SET #st = :s, updated_at = :t REMOVE gsi1pk, gsi1sk")
    };
    if let Some(e) = expect {
        b = b
            .condition_expression("#st = :e")
            .expression_attribute_values(":e", s(e));
    }
    let r = b.send().await;
    Ok(conditional(
        r.map(|_| ()).map_err(|e| e.into_service_error()),
        |e| e.is_conditional_check_failed_exception(),
    )?)
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct StaleReport {
    pub stale: usize,
    pub requeued: usize,
}

/// Operations queued or running with no progress for 15 minutes (a lost
/// message, a worker that died for good) are sent to the worker again; it
/// resumes them safely.
pub async fn requeue_stale_operations(ctx: &AppContext) -> Result<StaleReport, NumbersError> {
    let now = ctx.clock.now().unix_timestamp();
    let mut report = StaleReport::default();
    for shard in 0..crate::store::DUE_SHARDS {
        let out = ctx
            .store
            .client()
            .await
            .query()
            .table_name(ctx.store.table())
            .index_name(crate::store::DUE_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :u")
            .expression_attribute_values(":pk", s(format!("OPS#{shard}")))
            .expression_attribute_values(":u", n(now))
            .send()
            .await
            .map_err(dynamo)?;
        for k in out.items() {
            let (Some(pk), Some(sk)) = (
                k.get("PK").and_then(|v| v.as_s().ok()),
                k.get("SK").and_then(|v| v.as_s().ok()),
            ) else {
                continue;
            };
            let (Some(acc), Some(op_id)) = (pk.strip_prefix("ACCOUNT#"), sk.strip_prefix("OP#"))
            else {
                continue;
            };
            let Ok(account) = PortalAccountId::parse(acc) else {
                continue;
            };
            report.stale += 1;
            let op = get_operation(ctx, &account, op_id).await?;
            if matches!(op.state.as_str(), "queued" | "running") {
                set_op(ctx, &account, op_id, &op.state, Some(&op.state)).await?;
                enqueue(ctx, &account, op_id).await?;
                tracing::warn!(portal_account = %account, operation = op_id, "stale operation sent to the worker again");
                report.requeued += 1;
            }
        }
    }
    Ok(report)
}

// ---------- number records ----------

pub async fn get_number(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
) -> Result<Option<NumberItem>, NumbersError> {
    let out = ctx
        .store
        .client()
        .await
        .get_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(account_pk(account), &number_sk(num))))
        .consistent_read(true)
        .send()
        .await
        .map_err(dynamo)?;
    out.item
        .map(|i| serde_dynamo::from_item(i).map_err(|e| serde_err(e).into()))
        .transpose()
}

async fn put_number(
    ctx: &AppContext,
    item: &NumberItem,
    expect: Option<NumberState>,
) -> Result<bool, NumbersError> {
    let mut b = ctx
        .store
        .client()
        .await
        .put_item()
        .table_name(ctx.store.table())
        .set_item(Some(serde_dynamo::to_item(item).map_err(serde_err)?));
    b = match expect {
        None => b.condition_expression("attribute_not_exists(PK)"),
        Some(st) => b
            .condition_expression("#st = :e")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":e", s(st.as_str())),
    };
    let r = b.send().await;
    Ok(conditional(
        r.map(|_| ()).map_err(|e| e.into_service_error()),
        |e| e.is_conditional_check_failed_exception(),
    )?)
}

/// Moves a number along its lifecycle (refused if illegal), recording who did it.
async fn transition(
    ctx: &AppContext,
    item: &mut NumberItem,
    to: NumberState,
    actor: &str,
) -> Result<(), NumbersError> {
    let from = item.state;
    if !from.can_become(to) {
        return Err(NumbersError::IllegalTransition {
            number: item.number.to_string(),
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    let now = rfc3339(ctx.clock.now());
    item.state = to;
    item.updated_at = now.clone();
    item.history.push(Transition {
        at: now,
        from: from.as_str().into(),
        to: to.as_str().into(),
        actor: actor.into(),
    });
    if !put_number(ctx, item, Some(from)).await? {
        return Err(NumbersError::Conflict(format!(
            "{} changed meanwhile; try again",
            item.number
        )));
    }
    Ok(())
}

async fn delete_claim(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
) -> Result<(), NumbersError> {
    let r = ctx
        .store
        .client()
        .await
        .delete_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(format!("E164#{num}"), "OWNER")))
        .condition_expression("portal_account_id = :a")
        .expression_attribute_values(":a", s(account.to_string()))
        .send()
        .await;
    conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
        e.is_conditional_check_failed_exception()
    })?;
    Ok(())
}

async fn return_to_inventory(ctx: &AppContext, num: &E164Number) -> Result<(), NumbersError> {
    let r = ctx
        .store
        .client()
        .await
        .update_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(
            format!("INVENTORY#{}", area_code(num)),
            num.as_str(),
        )))
        .update_expression("SET #st = :av REMOVE reserved_by")
        .condition_expression("attribute_exists(PK)")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":av", s("available"))
        .send()
        .await;
    conditional(r.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
        e.is_conditional_check_failed_exception()
    })?;
    Ok(())
}

pub async fn all_numbers(
    ctx: &AppContext,
    account: &PortalAccountId,
) -> Result<Vec<NumberItem>, NumbersError> {
    let items = ctx.store.account_items(account, "NUMBER#").await?;
    items
        .into_iter()
        .map(|i| serde_dynamo::from_item(i).map_err(|e| serde_err(e).into()))
        .collect()
}

// ---------- the worker ----------

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct WorkReport {
    pub pushed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub resumed: u64,
}

/// Reasons in Zoom's code-1000 answers that mean "already done".
fn already_done(kind: OpKind, reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    match kind {
        OpKind::Release => r.contains("does not exist") || r.contains("not exist"),
        _ => r.contains("already exists"),
    }
}

/// Per-number failures of a code-1000 answer.
fn partial_failures(err: &ApiError) -> Option<HashMap<String, String>> {
    match err {
        ApiError::Zoom {
            status: 400,
            code: Some(1000),
            body,
            ..
        } => Some(
            body.get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let n = e.get("phoneNumber").and_then(Value::as_str)?;
                    let n = E164Number::normalize(n).ok()?.to_string();
                    Some((
                        n,
                        e.get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("failed")
                            .to_owned(),
                    ))
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Runs an operation to its end. Safe to run twice on the same message: it
/// resumes from the stored per-number results, and numbers whose push was in
/// flight are checked against Zoom before anything is sent again.
pub async fn process_operation(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
) -> Result<WorkReport, NumbersError> {
    let op = get_operation(ctx, account, op_id).await?;
    let mut report = WorkReport::default();
    if !matches!(op.state.as_str(), "queued" | "running") {
        return Ok(report);
    }
    set_op(ctx, account, op_id, "running", None).await?;
    let actor = format!("operation:{op_id}");
    let mut results = all_results(ctx, account, op_id).await?;
    let zoom = match zoom_account(ctx, account).await {
        Ok(z) => z,
        Err(NumbersError::NotConnected) => {
            // Retrying cannot help: fail what is left, finish the operation.
            let left: Vec<OpResult> = results
                .into_iter()
                .filter(|r| r.result == "pending" || r.result == "pushing")
                .map(|mut r| {
                    r.result = "failed".into();
                    r.reason = Some("not_connected".into());
                    r
                })
                .collect();
            report.failed = left.len() as u64;
            batch_put(ctx, &left).await?;
            let (ok, _, _) = checkpoint(ctx, account, op_id).await?;
            set_op(
                ctx,
                account,
                op_id,
                if ok == 0 {
                    "failed"
                } else {
                    "partially_failed"
                },
                None,
            )
            .await?;
            return Ok(report);
        }
        Err(e) => return Err(e),
    };

    // A previous run died mid-batch: ask Zoom what actually happened.
    if results.iter().any(|r| r.result == "pushing") {
        let present: HashSet<String> = peering_numbers_in_zoom(ctx, account, &zoom).await?;
        for r in results.iter_mut().filter(|r| r.result == "pushing") {
            let done = match op.kind {
                OpKind::Release => !present.contains(r.number.as_str()),
                _ => present.contains(r.number.as_str()),
            };
            r.result = if done { "succeeded" } else { "pending" }.into();
            report.resumed += 1;
        }
        // Records follow the results below.
        let fixed: Vec<OpResult> = results
            .iter()
            .filter(|r| r.result != "failed")
            .cloned()
            .collect();
        batch_put(ctx, &fixed).await?;
        let kind = op.kind;
        let futs = results
            .iter()
            .filter(|r| r.result == "succeeded")
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .map(|r| finish_owned(ctx, account, kind, (r, true, None), actor.as_str()));
        let finished: Vec<Result<(), NumbersError>> = futures::stream::iter(futs)
            .buffer_unordered(RECORD_CONCURRENCY)
            .collect()
            .await;
        finished.into_iter().collect::<Result<Vec<()>, _>>()?;
    }

    let pending: Vec<OpResult> = results
        .iter()
        .filter(|r| r.result == "pending")
        .cloned()
        .collect();
    for chunk in pending.chunks(PEERING_BATCH) {
        // Prepare records and mark the batch in flight before calling Zoom.
        let kind = op.kind;
        let futs = chunk
            .iter()
            .cloned()
            .map(|r| prepare_owned(ctx, account, kind, op_id, r, actor.as_str()));
        let prepared: Vec<(OpResult, Prepared)> = futures::stream::iter(futs)
            .buffer_unordered(RECORD_CONCURRENCY)
            .collect()
            .await;
        let mut batch = Vec::new();
        let mut refused = Vec::new();
        for (r, p) in prepared {
            match p? {
                Ok(()) => batch.push(r),
                Err(reason) => {
                    let mut f = r;
                    f.result = "failed".into();
                    f.reason = Some(reason);
                    refused.push(f);
                    report.failed += 1;
                }
            }
        }
        batch_put(ctx, &refused).await?;
        if batch.is_empty() {
            continue;
        }
        let inflight: Vec<OpResult> = batch
            .iter()
            .cloned()
            .map(|mut r| {
                r.result = "pushing".into();
                r
            })
            .collect();
        batch_put(ctx, &inflight).await?;
        report.pushed += batch.len() as u64;
        let answer = match op.kind {
            OpKind::Release => {
                let list = batch
                    .iter()
                    .map(|r| r.number.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                zoom_api::call(
                    ctx,
                    account,
                    &zoom,
                    Label::Light,
                    Method::DELETE,
                    "number_management/peering_numbers",
                    &[("phone_numbers", list)],
                    None,
                )
                .await
            }
            _ => {
                let items: Vec<Value> = batch
                    .iter()
                    .map(|r| {
                        let mut v = json!({"phone_number": r.number, "sip_trunk_name": ctx.config.sip_trunk_name, "status": !r.porting_in});
                        if let Some(b) = &r.billing_ref_id { v["billing_ref_id"] = json!(b); }
                        if let Some(si) = &r.service_info { v["service_info"] = json!(si); }
                        v
                    })
                    .collect();
                let body = json!({"allocated_product": "ZOOM_PHONE", "phone_numbers": items});
                zoom_api::call(
                    ctx,
                    account,
                    &zoom,
                    Label::Light,
                    Method::POST,
                    "number_management/peering_numbers",
                    &[],
                    Some(&body),
                )
                .await
            }
        };
        let failures: HashMap<String, String> = match answer {
            Ok(_) => HashMap::new(),
            Err(e) => match partial_failures(&e) {
                Some(f) => f,
                None => {
                    // Nothing is known of this batch: leave it in flight for the
                    // next delivery (which checks Zoom first) and fail this one.
                    return Err(e.into());
                }
            },
        };
        let outcomes: Vec<(OpResult, bool, Option<String>)> = batch
            .into_iter()
            .map(|mut r| match failures.get(r.number.as_str()) {
                Some(reason) if !already_done(op.kind, reason) => {
                    r.result = "failed".into();
                    r.reason = Some(reason.clone());
                    (r, false, Some(reason.clone()))
                }
                _ => {
                    r.result = "succeeded".into();
                    (r, true, None)
                }
            })
            .collect();
        report.succeeded += outcomes.iter().filter(|o| o.1).count() as u64;
        report.failed += outcomes.iter().filter(|o| !o.1).count() as u64;
        let futs = outcomes
            .clone()
            .into_iter()
            .map(|o| finish_owned(ctx, account, kind, o, actor.as_str()));
        let finished: Vec<Result<(), NumbersError>> = futures::stream::iter(futs)
            .buffer_unordered(RECORD_CONCURRENCY)
            .collect()
            .await;
        finished.into_iter().collect::<Result<Vec<()>, _>>()?;
        let done: Vec<OpResult> = outcomes.into_iter().map(|o| o.0).collect();
        batch_put(ctx, &done).await?;
        checkpoint(ctx, account, op_id).await?;
    }
    let final_counts = checkpoint(ctx, account, op_id).await?;
    let state = if final_counts.1 == 0 {
        "succeeded"
    } else if final_counts.0 == 0 {
        "failed"
    } else {
        "partially_failed"
    };
    set_op(ctx, account, op_id, state, None).await?;
    crate::metrics::count(
        if state == "succeeded" {
            "OperationsSucceeded"
        } else {
            "OperationsWithFailures"
        },
        1,
    );
    crate::metrics::count("NumbersFailed", final_counts.1);
    audit(
        ctx,
        account,
        "numbers_operation_finished",
        &actor,
        format!(
            "operation={op_id}; state={state}; succeeded={}; failed={}",
            final_counts.0, final_counts.1
        ),
    )
    .await?;
    Ok(report)
}

/// Ok(Err(reason)) refuses one number; Err stops the run.
type Prepared = Result<Result<(), String>, NumbersError>;

async fn prepare_owned<'a>(
    ctx: &'a AppContext,
    account: &'a PortalAccountId,
    kind: OpKind,
    op_id: &'a str,
    r: OpResult,
    actor: &'a str,
) -> (OpResult, Prepared) {
    let p = prepare_number(ctx, account, kind, op_id, &r, actor).await;
    (r, p)
}

async fn finish_owned<'a>(
    ctx: &'a AppContext,
    account: &'a PortalAccountId,
    kind: OpKind,
    o: (OpResult, bool, Option<String>),
    actor: &'a str,
) -> Result<(), NumbersError> {
    finish_number(ctx, account, kind, &o.0, o.1, o.2.as_ref(), actor).await
}

/// Recounts results into the operation item; returns (succeeded, failed, pending).
async fn checkpoint(
    ctx: &AppContext,
    account: &PortalAccountId,
    op_id: &str,
) -> Result<(u64, u64, u64), NumbersError> {
    let rs = all_results(ctx, account, op_id).await?;
    let count = |k: &str| rs.iter().filter(|r| r.result == k).count() as u64;
    let (ok, failed) = (count("succeeded"), count("failed"));
    let pending = rs.len() as u64 - ok - failed;
    ctx.store
        .client()
        .await
        .update_item()
        .table_name(ctx.store.table())
        .set_key(Some(key(account_pk(account), &format!("OP#{op_id}"))))
        .update_expression(
            "SET succeeded = :s, failed = :f, pending = :p, updated_at = :t, gsi1sk = :due",
        )
        .expression_attribute_values(
            ":due",
            n(ctx.clock.now().unix_timestamp() + STALE_OPERATION_SECS),
        )
        .expression_attribute_values(":s", n(ok))
        .expression_attribute_values(":f", n(failed))
        .expression_attribute_values(":p", n(pending))
        .expression_attribute_values(":t", s(rfc3339(ctx.clock.now())))
        .send()
        .await
        .map_err(dynamo)?;
    Ok((ok, failed, pending))
}

/// Before a push: claim the number (uploads) and move the record to `pushing`.
/// Err(reason) refuses this number only.
async fn prepare_number(
    ctx: &AppContext,
    account: &PortalAccountId,
    kind: OpKind,
    op_id: &str,
    r: &OpResult,
    actor: &str,
) -> Result<Result<(), String>, NumbersError> {
    let existing = get_number(ctx, account, &r.number).await?;
    match kind {
        OpKind::Release => {
            let Some(mut item) = existing else {
                return Ok(Err("unknown number".into()));
            };
            if item.state == NumberState::ReleaseRequested {
                return Ok(Ok(()));
            }
            match transition(ctx, &mut item, NumberState::ReleaseRequested, actor).await {
                Ok(()) => Ok(Ok(())),
                Err(NumbersError::IllegalTransition { from, .. }) => {
                    Ok(Err(format!("cannot release a number that is {from}")))
                }
                Err(e) => Err(e),
            }
        }
        OpKind::Upload | OpKind::Order => {
            let mut item = match existing {
                Some(i) => i,
                None => {
                    // Uploads claim the number now (conditional: one tenant per number).
                    let claim = ctx
                        .store
                        .client()
                        .await
                        .put_item()
                        .table_name(ctx.store.table())
                        .item("PK", s(format!("E164#{}", r.number)))
                        .item("SK", s("OWNER"))
                        .item("portal_account_id", s(account.to_string()))
                        .item("number", s(r.number.to_string()))
                        .condition_expression("attribute_not_exists(PK) OR portal_account_id = :a")
                        .expression_attribute_values(":a", s(account.to_string()))
                        .send()
                        .await;
                    if !conditional(claim.map(|_| ()).map_err(|e| e.into_service_error()), |e| {
                        e.is_conditional_check_failed_exception()
                    })? {
                        return Ok(Err("held by another account".into()));
                    }
                    let now = rfc3339(ctx.clock.now());
                    let item = NumberItem {
                        pk: account_pk(account),
                        sk: number_sk(&r.number),
                        number: r.number.clone(),
                        state: NumberState::Uploaded,
                        source: "upload".into(),
                        porting_in: r.porting_in,
                        zoom_active: !r.porting_in,
                        billing_ref_id: r.billing_ref_id.clone(),
                        service_info: r.service_info.clone(),
                        operation_id: Some(op_id.to_owned()),
                        port_out_date: None,
                        unassign_on_port_day: false,
                        last_error: None,
                        gsi1pk: None,
                        gsi1sk: None,
                        history: vec![Transition {
                            at: now.clone(),
                            from: "new".into(),
                            to: "uploaded".into(),
                            actor: actor.into(),
                        }],
                        updated_at: now,
                    };
                    if !put_number(ctx, &item, None).await? {
                        match get_number(ctx, account, &r.number).await? {
                            Some(i) => i,
                            None => return Ok(Err("could not record the number".into())),
                        }
                    } else {
                        item
                    }
                }
            };
            if item.state == NumberState::Pushing || item.state.in_zoom() {
                return Ok(Ok(()));
            }
            item.operation_id = Some(op_id.to_owned());
            match transition(ctx, &mut item, NumberState::Pushing, actor).await {
                Ok(()) => Ok(Ok(())),
                Err(NumbersError::IllegalTransition { from, .. }) => {
                    Ok(Err(format!("number is {from}")))
                }
                Err(e) => Err(e),
            }
        }
    }
}

async fn finish_number(
    ctx: &AppContext,
    account: &PortalAccountId,
    kind: OpKind,
    r: &OpResult,
    ok: bool,
    reason: Option<&String>,
    actor: &str,
) -> Result<(), NumbersError> {
    let Some(mut item) = get_number(ctx, account, &r.number).await? else {
        return Ok(());
    };
    match (kind, ok) {
        (OpKind::Release, true) => {
            if item.state != NumberState::Released {
                if item.state != NumberState::ReleaseRequested {
                    transition(ctx, &mut item, NumberState::ReleaseRequested, actor)
                        .await
                        .ok();
                }
                transition(ctx, &mut item, NumberState::Released, actor).await?;
                delete_claim(ctx, account, &r.number).await?;
                if item.source == "order" {
                    return_to_inventory(ctx, &r.number).await?;
                }
            }
        }
        (OpKind::Release, false) => {
            if item.state == NumberState::ReleaseRequested {
                item.last_error = reason.cloned();
                transition(ctx, &mut item, NumberState::InZoom, actor).await?;
            }
        }
        (_, true) => {
            if item.state == NumberState::Pushing {
                item.zoom_active = !item.porting_in;
                item.last_error = None;
                transition(ctx, &mut item, NumberState::InZoom, actor).await?;
            }
        }
        (_, false) => {
            if item.state == NumberState::Pushing {
                item.last_error = reason.cloned();
                transition(ctx, &mut item, NumberState::PushFailed, actor).await?;
            }
        }
    }
    Ok(())
}

// ---------- live Zoom state ----------

/// The carrier's numbers in the customer's Zoom account (Provider Exchange
/// list, 300 a page, paged to the end), in E.164.
async fn peering_numbers_in_zoom(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom: &str,
) -> Result<HashSet<String>, NumbersError> {
    Ok(zoom_api::list_all(
        ctx,
        account,
        zoom,
        Label::Light,
        "number_management/peering_numbers",
        "numbers",
        300,
        &[],
    )
    .await?
    .iter()
    .filter_map(|v| v.get("phone_number").and_then(Value::as_str))
    .filter_map(|n| E164Number::normalize(n).ok().map(|n| n.to_string()))
    .collect())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LiveNumber {
    pub id: String,
    pub assigned: bool,
    /// Zoom's `status`: `available`, or `pending` while porting in.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Assignee {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// `GET /phone/numbers` (paged to the end) → number → live state.
pub async fn live_numbers(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom: &str,
    assigned_only: bool,
) -> Result<HashMap<String, LiveNumber>, NumbersError> {
    let extra = if assigned_only {
        vec![("type", "assigned".to_owned())]
    } else {
        vec![]
    };
    let items = zoom_api::list_all(
        ctx,
        account,
        zoom,
        Label::Medium,
        "phone/numbers",
        "phone_numbers",
        100,
        &extra,
    )
    .await?;
    Ok(items
        .iter()
        .filter_map(parse_live)
        .map(|(n, l)| (n.to_string(), l))
        .collect())
}

/// One item of `GET /phone/numbers` as (number, live state).
fn parse_live(v: &Value) -> Option<(E164Number, LiveNumber)> {
    let text = |o: &Value, k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let num = E164Number::normalize(v.get("number")?.as_str()?).ok()?;
    let assignee = v
        .get("assignee")
        .filter(|a| a.is_object())
        .map(|a| Assignee {
            kind: a
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            id: text(a, "id"),
            name: text(a, "name"),
        });
    Some((
        num,
        LiveNumber {
            id: text(v, "id"),
            assigned: assignee.is_some(),
            status: text(v, "status"),
            assignee,
        },
    ))
}

#[derive(Debug, Serialize)]
pub struct NumberView {
    pub number: String,
    pub state: NumberState,
    pub source: String,
    pub porting_in: bool,
    pub assigned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_out_date: Option<String>,
    pub unassign_on_port_day: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Our records joined with live Zoom state, filtered, in pages.
pub async fn list_numbers(
    ctx: &AppContext,
    account: &PortalAccountId,
    state: Option<NumberState>,
    assigned: Option<bool>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<NumberView>, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    let live = live_numbers(ctx, account, &zoom, false).await?;
    let mut all = all_numbers(ctx, account).await?;
    all.sort_by(|a, b| a.number.cmp(&b.number));
    let after = cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| NumbersError::invalid("cursor", "not a cursor from this API"))
        })
        .transpose()?;
    let views: Vec<NumberView> = all
        .into_iter()
        .filter(|n| {
            after
                .as_ref()
                .is_none_or(|a| n.number.as_str() > a.as_str())
        })
        .filter(|n| state.is_none_or(|s| n.state == s))
        .map(|n| {
            let l = live.get(n.number.as_str());
            NumberView {
                number: n.number.to_string(),
                state: n.state,
                source: n.source,
                porting_in: n.porting_in,
                assigned: l.is_some_and(|l| l.assigned),
                status: l.map(|l| l.status.clone()),
                assignee: l.and_then(|l| l.assignee.clone()),
                port_out_date: n.port_out_date,
                unassign_on_port_day: n.unassign_on_port_day,
                last_error: n.last_error,
            }
        })
        .filter(|v| assigned.is_none_or(|a| v.assigned == a))
        .take(limit + 1)
        .collect();
    let mut views = views;
    let next = if views.len() > limit {
        views.truncate(limit);
        views
            .last()
            .map(|v| URL_SAFE_NO_PAD.encode(v.number.as_bytes()))
    } else {
        None
    };
    Ok(Page {
        items: views,
        next_cursor: next,
    })
}

/// Users, call queues, auto receptionists and sites, paged through.
pub async fn provisioning_options(
    ctx: &AppContext,
    account: &PortalAccountId,
) -> Result<Value, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    let pick = |items: Vec<Value>| -> Vec<Value> {
        items
            .into_iter()
            .map(|v| json!({"id": v.get("id"), "name": v.get("name"), "extension_number": v.get("extension_number")}))
            .collect()
    };
    let users = zoom_api::list_all(
        ctx,
        account,
        &zoom,
        Label::Medium,
        "phone/users",
        "users",
        100,
        &[],
    )
    .await?;
    let cqs = zoom_api::list_all(
        ctx,
        account,
        &zoom,
        Label::Medium,
        "phone/call_queues",
        "call_queues",
        100,
        &[],
    )
    .await?;
    let ars = zoom_api::list_all(
        ctx,
        account,
        &zoom,
        Label::Medium,
        "phone/auto_receptionists",
        "auto_receptionists",
        100,
        &[],
    )
    .await?;
    let sites = zoom_api::list_all(
        ctx,
        account,
        &zoom,
        Label::Medium,
        "phone/sites",
        "sites",
        300,
        &[],
    )
    .await?;
    Ok(
        json!({"users": pick(users), "call_queues": pick(cqs), "auto_receptionists": pick(ars),
              "sites": sites.into_iter().map(|v| json!({"id": v.get("id"), "name": v.get("name")})).collect::<Vec<_>>()}),
    )
}

// ---------- provisioning ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    User,
    CallQueue,
    AutoReceptionist,
}

impl TargetType {
    fn path(self) -> &'static str {
        match self {
            Self::User => "users",
            Self::CallQueue => "call_queues",
            Self::AutoReceptionist => "auto_receptionists",
        }
    }
    fn from_zoom(t: &str) -> Option<Self> {
        match t {
            "user" => Some(Self::User),
            "callQueue" => Some(Self::CallQueue),
            "autoReceptionist" => Some(Self::AutoReceptionist),
            _ => None,
        }
    }
}

async fn owned_number(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
) -> Result<NumberItem, NumbersError> {
    get_number(ctx, account, num)
        .await?
        .filter(|n| n.state != NumberState::Released && n.state != NumberState::PortedOut)
        .ok_or_else(|| NumbersError::NotFound("number".into()))
}

async fn live_one(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom: &str,
    num: &E164Number,
) -> Result<Option<LiveNumber>, NumbersError> {
    let r = zoom_api::call(
        ctx,
        account,
        zoom,
        Label::Medium,
        Method::GET,
        "phone/numbers",
        &[("phone_number", num.to_string()), ("page_size", "1".into())],
        None,
    )
    .await?;
    Ok(r.body
        .get("phone_numbers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(parse_live)
        .find(|(n, _)| n == num)
        .map(|(_, l)| l))
}

async fn unassign_live(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom: &str,
    num: &E164Number,
    live: &LiveNumber,
) -> Result<Option<Assignee>, NumbersError> {
    let Some(a) = live.assignee.clone() else {
        return Ok(None);
    };
    let Some(t) = TargetType::from_zoom(&a.kind) else {
        return Err(NumbersError::Conflict(format!(
            "{num} is assigned to a {} in Zoom; unassign it there",
            a.kind
        )));
    };
    // Call queues take only the number's id; the others take id or number.
    let path = format!("phone/{}/{}/phone_numbers/{}", t.path(), a.id, live.id);
    let _ = num;
    zoom_api::call(
        ctx,
        account,
        zoom,
        Label::Light,
        Method::DELETE,
        &path,
        &[],
        None,
    )
    .await?;
    Ok(Some(a))
}

pub async fn assign(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    target: TargetType,
    target_id: &str,
    actor: &str,
) -> Result<Value, NumbersError> {
    if target_id.is_empty()
        || target_id.len() > 64
        || !target_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(NumbersError::invalid("id", "not a Zoom id"));
    }
    let zoom = zoom_account(ctx, account).await?;
    let item = owned_number(ctx, account, num).await?;
    if !item.state.in_zoom() {
        return Err(NumbersError::Conflict(format!(
            "{num} is {} and not in Zoom yet",
            item.state.as_str()
        )));
    }
    // The target must exist.
    let label = if target == TargetType::AutoReceptionist {
        Label::Medium
    } else {
        Label::Light
    };
    match zoom_api::call(
        ctx,
        account,
        &zoom,
        label,
        Method::GET,
        &format!("phone/{}/{target_id}", target.path()),
        &[],
        None,
    )
    .await
    {
        Ok(_) => {}
        Err(ApiError::Zoom {
            status: 400 | 404, ..
        }) => {
            return Err(NumbersError::NotFound(format!(
                "{} {target_id}",
                target.path().trim_end_matches('s')
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let live = live_one(ctx, account, &zoom, num)
        .await?
        .ok_or_else(|| NumbersError::Conflict(format!("{num} is not in Zoom")))?;
    if let Some(a) = &live.assignee
        && TargetType::from_zoom(&a.kind) == Some(target)
        && a.id == target_id
    {
        return Ok(json!({"number": num, "assigned": true, "assignee": a, "changed": false}));
    }
    let previous = unassign_live(ctx, account, &zoom, num, &live).await?;
    let body = json!({"phone_numbers": [{"number": num}]});
    zoom_api::call(
        ctx,
        account,
        &zoom,
        Label::Light,
        Method::POST,
        &format!("phone/{}/{target_id}/phone_numbers", target.path()),
        &[],
        Some(&body),
    )
    .await?;
    let detail = format!(
        "number={num}; to={}:{target_id}; previous={}",
        target.path(),
        previous
            .as_ref()
            .map(|p| format!("{}:{}", p.kind, p.id))
            .unwrap_or_else(|| "none".into())
    );
    audit(ctx, account, "number_assigned", actor, detail).await?;
    let after = live_one(ctx, account, &zoom, num).await?;
    Ok(
        json!({"number": num, "assigned": true, "assignee": after.and_then(|l| l.assignee), "changed": true}),
    )
}

pub async fn unassign(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<Value, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    owned_number(ctx, account, num).await?;
    let Some(live) = live_one(ctx, account, &zoom, num).await? else {
        return Err(NumbersError::Conflict(format!("{num} is not in Zoom")));
    };
    let previous = unassign_live(ctx, account, &zoom, num, &live).await?;
    if let Some(p) = &previous {
        audit(
            ctx,
            account,
            "number_unassigned",
            actor,
            format!("number={num}; from={}:{}", p.kind, p.id),
        )
        .await?;
    }
    Ok(json!({"number": num, "assigned": false, "changed": previous.is_some()}))
}

// ---------- porting and release ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortOutRequest {
    pub date: String,
    #[serde(default)]
    pub unassign_on_port_day: bool,
}

fn port_day_epoch(date: &str) -> Result<i64, NumbersError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(date, &fmt)
        .map_err(|_| NumbersError::invalid("date", "a date as YYYY-MM-DD"))?;
    Ok(d.midnight().assume_utc().unix_timestamp())
}

pub async fn schedule_port_out(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    req: PortOutRequest,
    actor: &str,
) -> Result<NumberItem, NumbersError> {
    let day = port_day_epoch(&req.date)?;
    let today = ctx
        .clock
        .now()
        .date()
        .midnight()
        .assume_utc()
        .unix_timestamp();
    if day < today {
        return Err(NumbersError::invalid(
            "date",
            "the port date is in the past",
        ));
    }
    let mut item = owned_number(ctx, account, num).await?;
    item.port_out_date = Some(req.date.clone());
    item.unassign_on_port_day = req.unassign_on_port_day;
    if req.unassign_on_port_day {
        item.gsi1pk = Some(format!("PORTDAY#{}", crate::store::due_shard(account)));
        item.gsi1sk = Some(day);
    } else {
        item.gsi1pk = None;
        item.gsi1sk = None;
    }
    if item.state == NumberState::PortOutScheduled {
        // Re-scheduling: same state, new date.
        if !put_number(ctx, &item, Some(NumberState::PortOutScheduled)).await? {
            return Err(NumbersError::Conflict(format!(
                "{num} changed meanwhile; try again"
            )));
        }
    } else {
        transition(ctx, &mut item, NumberState::PortOutScheduled, actor).await?;
    }
    audit(
        ctx,
        account,
        "port_out_scheduled",
        actor,
        format!(
            "number={num}; date={}; unassign_on_port_day={}",
            req.date, req.unassign_on_port_day
        ),
    )
    .await?;
    Ok(item)
}

pub async fn cancel_port_out(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<NumberItem, NumbersError> {
    let mut item = owned_number(ctx, account, num).await?;
    item.port_out_date = None;
    item.unassign_on_port_day = false;
    item.gsi1pk = None;
    item.gsi1sk = None;
    transition(ctx, &mut item, NumberState::InZoom, actor).await?;
    audit(
        ctx,
        account,
        "port_out_cancelled",
        actor,
        format!("number={num}"),
    )
    .await?;
    Ok(item)
}

pub async fn release(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<Accepted, NumbersError> {
    zoom_account(ctx, account).await?;
    let item = owned_number(ctx, account, num).await?;
    if !item.state.can_become(NumberState::ReleaseRequested)
        && !item.state.can_become(NumberState::Released)
    {
        return Err(NumbersError::IllegalTransition {
            number: num.to_string(),
            from: item.state.as_str(),
            to: "release_requested",
        });
    }
    if !item.state.in_zoom() {
        // Never reached Zoom: release at once.
        let mut item = item;
        transition(ctx, &mut item, NumberState::Released, actor).await?;
        delete_claim(ctx, account, num).await?;
        if item.source == "order" {
            return_to_inventory(ctx, num).await?;
        }
    }
    let op = create_operation(
        ctx,
        account,
        OpKind::Release,
        actor,
        vec![result(num.clone(), "pending", None)],
    )
    .await?;
    Ok(Accepted {
        operation_id: op,
        total: 1,
        rejected: vec![],
    })
}

/// Carrier: the port-in finished → the number becomes active in Zoom.
pub async fn complete_port_in(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<NumberItem, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    let mut item = owned_number(ctx, account, num).await?;
    if !item.state.in_zoom() {
        return Err(NumbersError::Conflict(format!(
            "{num} is {} and not in Zoom",
            item.state.as_str()
        )));
    }
    let body = json!({"phone_numbers": [{"phone_number": num, "status": true}]});
    zoom_api::call(
        ctx,
        account,
        &zoom,
        Label::Light,
        Method::PATCH,
        "number_management/peering_numbers",
        &[],
        Some(&body),
    )
    .await?;
    let from = item.state;
    item.zoom_active = true;
    item.porting_in = false;
    item.updated_at = rfc3339(ctx.clock.now());
    if !put_number(ctx, &item, Some(from)).await? {
        return Err(NumbersError::Conflict(format!(
            "{num} changed meanwhile; try again"
        )));
    }
    audit(
        ctx,
        account,
        "port_in_completed",
        actor,
        format!("number={num}"),
    )
    .await?;
    Ok(item)
}

/// Carrier: the port-out finished → the number leaves Zoom.
pub async fn complete_port_out(
    ctx: &AppContext,
    account: &PortalAccountId,
    num: &E164Number,
    actor: &str,
) -> Result<NumberItem, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    let mut item = owned_number(ctx, account, num).await?;
    if item.state != NumberState::PortOutScheduled {
        return Err(NumbersError::IllegalTransition {
            number: num.to_string(),
            from: item.state.as_str(),
            to: "ported_out",
        });
    }
    if let Some(live) = live_one(ctx, account, &zoom, num).await?
        && live.assigned
    {
        return Err(NumbersError::Conflict(format!(
            "{num} is still assigned in Zoom; unassign it first"
        )));
    }
    match zoom_api::call(
        ctx,
        account,
        &zoom,
        Label::Light,
        Method::DELETE,
        "number_management/peering_numbers",
        &[("phone_numbers", num.to_string())],
        None,
    )
    .await
    {
        Ok(_) => {}
        Err(e) => match partial_failures(&e) {
            Some(f) if f.values().all(|r| already_done(OpKind::Release, r)) => {}
            _ => return Err(e.into()),
        },
    }
    item.gsi1pk = None;
    item.gsi1sk = None;
    transition(ctx, &mut item, NumberState::PortedOut, actor).await?;
    delete_claim(ctx, account, num).await?;
    audit(
        ctx,
        account,
        "port_out_completed",
        actor,
        format!("number={num}"),
    )
    .await?;
    Ok(item)
}

// ---------- removal check ----------

#[derive(Debug, Serialize)]
pub struct Blocker {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub reason: &'static str,
    pub detail: String,
    pub next_step: String,
}

#[derive(Debug, Serialize)]
pub struct RemovalCheck {
    pub ready: bool,
    pub blockers: Vec<Blocker>,
    pub summary: Value,
}

fn kind_name(k: &str) -> &str {
    match k {
        "user" => "user",
        "callQueue" => "call queue",
        "autoReceptionist" => "auto receptionist",
        "commonArea" => "common area",
        other => other,
    }
}

/// What still blocks removing the app, from live Zoom state paged to the end.
pub async fn removal_check(
    ctx: &AppContext,
    account: &PortalAccountId,
) -> Result<RemovalCheck, NumbersError> {
    let zoom = zoom_account(ctx, account).await?;
    let running: Vec<String> = ctx
        .store
        .account_items(account, "OP#")
        .await?
        .into_iter()
        .filter(|i| {
            i.get("state")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| s == "queued" || s == "running")
        })
        .filter_map(|i| i.get("operation_id").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    // The carrier's numbers in the customer's Zoom account.
    let peering = zoom_api::list_all(
        ctx,
        account,
        &zoom,
        Label::Light,
        "number_management/peering_numbers",
        "numbers",
        300,
        &[],
    )
    .await?;
    let in_zoom: Vec<String> = peering
        .iter()
        .filter_map(|v| v.get("phone_number").and_then(Value::as_str))
        .filter_map(|n| E164Number::normalize(n).ok().map(|n| n.to_string()))
        .collect();
    let assigned = if peering
        .iter()
        .any(|v| v.get("assigned").and_then(Value::as_bool) == Some(true))
    {
        live_numbers(ctx, account, &zoom, true).await?
    } else {
        HashMap::new()
    };
    let ours: HashMap<String, NumberItem> = all_numbers(ctx, account)
        .await?
        .into_iter()
        .map(|n| (n.number.to_string(), n))
        .collect();
    let mut blockers = Vec::new();
    let (mut n_assigned, mut n_port, mut n_nodisp) = (0, 0, 0);
    for num in &in_zoom {
        let rec = ours.get(num);
        if let Some(a) = assigned.get(num).and_then(|l| l.assignee.clone()) {
            n_assigned += 1;
            let on_day = rec
                .and_then(|r| r.port_out_date.clone())
                .map(|d| format!(" on the day of your scheduled port ({d}) to avoid downtime"))
                .unwrap_or_default();
            blockers.push(Blocker {
                number: Some(num.clone()),
                reason: "assigned",
                detail: format!("assigned to {} {}", kind_name(&a.kind), a.name),
                next_step: format!(
                    "Unassign {num} from {} {}{on_day}, in Zoom or with Unassign in the Portal.",
                    kind_name(&a.kind),
                    a.name
                ),
            });
        }
        match rec.map(|r| r.state) {
            Some(NumberState::PortOutScheduled) => {
                n_port += 1;
                let d = rec
                    .and_then(|r| r.port_out_date.clone())
                    .unwrap_or_default();
                blockers.push(Blocker {
                    number: Some(num.clone()),
                    reason: "port_out_not_complete",
                    detail: format!("port-out scheduled for {d}"),
                    next_step: "Wait for the port to complete; the carrier then removes the number from Zoom.".into(),
                });
            }
            Some(NumberState::ReleaseRequested) => {}
            _ => {
                n_nodisp += 1;
                blockers.push(Blocker {
                    number: Some(num.clone()),
                    reason: "no_disposition",
                    detail: "in Zoom with no port-out or release scheduled".into(),
                    next_step: "Contact support to schedule porting this number away, or release it in the Portal.".into(),
                });
            }
        }
    }
    for op in &running {
        blockers.push(Blocker {
            number: None,
            reason: "operation_in_progress",
            detail: format!("operation {op} is still running"),
            next_step: "Wait for the operation to finish.".into(),
        });
    }
    let ready = in_zoom.is_empty() && running.is_empty();
    Ok(RemovalCheck {
        ready,
        summary: json!({
            "numbers_in_zoom": in_zoom.len(), "assigned": n_assigned, "port_out_not_complete": n_port,
            "no_disposition": n_nodisp, "operations_in_progress": running.len(),
            "next_step": if ready { "Remove the app in the Zoom App Marketplace (Manage > Added Apps > Remove)." } else { "Clear the blockers listed." },
        }),
        blockers,
    })
}

// ---------- scheduled: drift repair ----------

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct DriftReport {
    pub accounts: usize,
    pub missing_in_zoom: usize,
    pub found_in_zoom: usize,
    pub unknown_in_zoom: usize,
    pub failed_accounts: usize,
}

/// Compares our records with Zoom's peering list for every verified account:
/// numbers gone from Zoom behind our back become `push_failed` (they can be
/// pushed again), numbers Zoom has that we thought missing become `in_zoom`,
/// numbers Zoom lists that we never recorded are reported. Each finding is
/// audited; one account's failure never stops the others.
pub async fn repair_drift(ctx: &AppContext) -> Result<DriftReport, NumbersError> {
    let mut report = DriftReport::default();
    let mut accounts = Vec::new();
    for shard in 0..crate::store::DUE_SHARDS {
        accounts.extend(
            ctx.store
                .due_accounts(&format!("REFRESH#{shard}"), i64::MAX)
                .await?,
        );
    }
    for account in accounts {
        report.accounts += 1;
        match repair_account(ctx, &account, &mut report).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(portal_account = %account, error = %e, "drift repair failed");
                report.failed_accounts += 1;
            }
        }
    }
    Ok(report)
}

async fn repair_account(
    ctx: &AppContext,
    account: &PortalAccountId,
    report: &mut DriftReport,
) -> Result<(), NumbersError> {
    let ours = all_numbers(ctx, account).await?;
    if ours.is_empty() {
        return Ok(());
    }
    let zoom = zoom_account(ctx, account).await?;
    let present: HashSet<String> = peering_numbers_in_zoom(ctx, account, &zoom).await?;
    let actor = "system:reconcile";
    let mut known = HashSet::new();
    for mut item in ours {
        known.insert(item.number.to_string());
        let there = present.contains(item.number.as_str());
        if matches!(
            item.state,
            NumberState::InZoom | NumberState::PortOutScheduled
        ) && !there
        {
            item.last_error = Some("no longer in Zoom (found by reconciliation)".into());
            item.gsi1pk = None;
            item.gsi1sk = None;
            transition(ctx, &mut item, NumberState::PushFailed, actor).await?;
            audit(
                ctx,
                account,
                "number_drift_missing_in_zoom",
                actor,
                format!("number={}", item.number),
            )
            .await?;
            report.missing_in_zoom += 1;
        } else if item.state == NumberState::PushFailed && there {
            for to in [NumberState::Pushing, NumberState::InZoom] {
                transition(ctx, &mut item, to, actor).await?;
            }
            audit(
                ctx,
                account,
                "number_drift_found_in_zoom",
                actor,
                format!("number={}", item.number),
            )
            .await?;
            report.found_in_zoom += 1;
        }
    }
    for n in present.difference(&known) {
        audit(
            ctx,
            account,
            "number_drift_unknown_in_zoom",
            actor,
            format!("number={n}"),
        )
        .await?;
        report.unknown_in_zoom += 1;
    }
    Ok(())
}

// ---------- scheduled: port-day unassignment ----------

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct PortDayReport {
    pub due: usize,
    pub unassigned: usize,
    pub failed: usize,
}

/// Unassigns numbers whose port day has come and that asked for it.
pub async fn port_day_unassign(ctx: &AppContext) -> Result<PortDayReport, NumbersError> {
    let now = ctx.clock.now();
    let mut report = PortDayReport::default();
    for shard in 0..crate::store::DUE_SHARDS {
        let out = ctx
            .store
            .client()
            .await
            .query()
            .table_name(ctx.store.table())
            .index_name(crate::store::DUE_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :u")
            .expression_attribute_values(":pk", s(format!("PORTDAY#{shard}")))
            .expression_attribute_values(":u", n(now.unix_timestamp()))
            .send()
            .await
            .map_err(dynamo)?;
        for k in out.items() {
            let (Some(pk), Some(sk)) = (
                k.get("PK").and_then(|v| v.as_s().ok()),
                k.get("SK").and_then(|v| v.as_s().ok()),
            ) else {
                continue;
            };
            let (Some(acc), Some(num)) = (pk.strip_prefix("ACCOUNT#"), sk.strip_prefix("NUMBER#"))
            else {
                continue;
            };
            let (Ok(account), Ok(num)) = (PortalAccountId::parse(acc), E164Number::parse(num))
            else {
                continue;
            };
            report.due += 1;
            let r = async {
                unassign(ctx, &account, &num, "system:port-day").await?;
                let mut item = owned_number(ctx, &account, &num).await?;
                let st = item.state;
                item.gsi1pk = None;
                item.gsi1sk = None;
                item.updated_at = rfc3339(now);
                put_number(ctx, &item, Some(st)).await?;
                Ok::<_, NumbersError>(())
            }
            .await;
            match r {
                Ok(()) => report.unassigned += 1,
                Err(e) => {
                    tracing::error!(portal_account = %account, error = %e, "port-day unassignment failed");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_only_its_edges() {
        use NumberState::*;
        let all = [
            Reserved,
            Uploaded,
            Pushing,
            InZoom,
            PushFailed,
            PortOutScheduled,
            PortedOut,
            ReleaseRequested,
            Released,
        ];
        let allowed = [
            (Reserved, Pushing),
            (Uploaded, Pushing),
            (PushFailed, Pushing),
            (Pushing, InZoom),
            (Pushing, PushFailed),
            (InZoom, PortOutScheduled),
            (InZoom, ReleaseRequested),
            (PortOutScheduled, InZoom),
            (PortOutScheduled, PortedOut),
            (ReleaseRequested, Released),
            (ReleaseRequested, InZoom),
            (Reserved, Released),
            (Uploaded, Released),
            (PushFailed, Released),
            (InZoom, PushFailed),
            (PortOutScheduled, PushFailed),
        ];
        for a in all {
            for b in all {
                assert_eq!(a.can_become(b), allowed.contains(&(a, b)), "{a:?} -> {b:?}");
            }
        }
        assert!(!PortedOut.can_become(InZoom) && !Released.can_become(Pushing));
    }

    #[test]
    fn rows_are_validated_one_by_one() {
        let row = |n: &str| RawUploadRow {
            number: n.into(),
            porting_in: false,
            billing_ref_id: None,
            service_info: None,
        };
        let (good, bad) = validate_rows(vec![
            row("+16175550100"),
            row("617-555-0101"),
            row("+16175550100"),
            row("+16175550102"),
        ]);
        assert_eq!(good.len(), 2);
        assert_eq!(bad.iter().map(|e| e.row).collect::<Vec<_>>(), vec![2, 3]);
        assert!(bad[1].error.contains("duplicate"));
    }

    #[test]
    fn csv_with_quotes_and_header() {
        let rows = parse_csv("number,porting_in,service_info\n+16175550100,true,\"Main, line\"\n\n+16175550101,false,x\n", &["number"]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1["service_info"], "Main, line");
        assert!(parse_csv("phone\n+1617", &["number"]).is_err());
    }

    #[test]
    fn area_codes_and_cursors() {
        assert_eq!(
            area_code(&E164Number::parse("+16175550100").unwrap()),
            "617"
        );
        assert_eq!(
            area_code(&E164Number::parse("+442071234567").unwrap()),
            "442"
        );
        let k = HashMap::from([("PK".to_string(), s("A")), ("SK".to_string(), s("B"))]);
        assert_eq!(decode_cursor(&encode_cursor(&k)).unwrap(), k);
        assert!(decode_cursor("!!").is_err());
    }
}
