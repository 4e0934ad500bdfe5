//! The local stand-in for API Gateway (HTTP API, payload v2.0): routes from
//! `template.yaml`, the JWT authorizer, and the same Lambda event the real
//! service would send, handed to the functions' own handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::AppContext;

use crate::jwt::{AuthFailure, JwtKeys};
use crate::template::{RouteAuth, Template};

/// API Gateway's own payload limit is 10 MB.
const MAX_BODY: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub issuer: String,
    pub audience: String,
    /// Default claims for dev tokens.
    pub account_claim: String,
    pub demo_account: String,
}

pub struct Gateway {
    pub template: Template,
    pub ctx: AppContext,
    pub keys: JwtKeys,
    pub config: GatewayConfig,
}

/// The functions this gateway can run, by binary name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Install,
    OAuthCallback,
    Status,
    ZoomWebhook,
    TokenRefresh,
    Reconcile,
    Numbers,
    NumberWorker,
    RemovalCheck,
}

impl Function {
    pub fn from_binary(name: &str) -> Option<Self> {
        match name {
            "install" => Some(Self::Install),
            "oauth-callback" => Some(Self::OAuthCallback),
            "status" => Some(Self::Status),
            "zoom-webhook" => Some(Self::ZoomWebhook),
            "token-refresh" => Some(Self::TokenRefresh),
            "reconcile" => Some(Self::Reconcile),
            "numbers" => Some(Self::Numbers),
            "number-worker" => Some(Self::NumberWorker),
            "removal-check" => Some(Self::RemovalCheck),
            _ => None,
        }
    }

    /// Runs a scheduled function with an EventBridge Scheduler-like event.
    pub async fn run_job(self, ctx: &AppContext) -> Result<Value, lambda_runtime::Error> {
        let event = json!({"source": "local-gateway.schedule", "time": time::OffsetDateTime::now_utc().unix_timestamp()});
        match self {
            Self::TokenRefresh => token_refresh::handle(ctx, event).await,
            Self::Reconcile => reconcile::handle(ctx, event).await,
            _ => Err("not a scheduled function".into()),
        }
    }

    /// Runs an event-source function (SQS) with the event the mapping builds.
    pub async fn run_event(
        self,
        ctx: &AppContext,
        event: Value,
    ) -> Result<Value, lambda_runtime::Error> {
        match self {
            Self::NumberWorker => number_worker::handle(ctx, event).await,
            _ => Err("not an event-source function".into()),
        }
    }

    async fn call(
        self,
        ctx: &AppContext,
        req: lambda_http::Request,
    ) -> Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error> {
        match self {
            Self::Install => install::handle(ctx, req).await,
            Self::OAuthCallback => oauth_callback::handle(ctx, req).await,
            Self::Status => status::handle(ctx, req).await,
            Self::ZoomWebhook => zoom_webhook::handle(ctx, req).await,
            Self::Numbers => numbers::handle(ctx, req).await,
            Self::RemovalCheck => removal_check::handle(ctx, req).await,
            Self::TokenRefresh | Self::Reconcile | Self::NumberWorker => {
                Err("not an HTTP function".into())
            }
        }
    }
}

impl Gateway {
    /// Fails if the template names a function this gateway cannot run.
    pub fn new(
        template: Template,
        ctx: AppContext,
        keys: JwtKeys,
        config: GatewayConfig,
    ) -> anyhow::Result<Self> {
        for (id, bin) in &template.functions {
            if Function::from_binary(bin).is_none() {
                anyhow::bail!(
                    "template function {id} (binary {bin}) is not wired into the local gateway"
                );
            }
        }
        Ok(Self {
            template,
            ctx,
            keys,
            config,
        })
    }
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/settings/integration", get(page))
        .route("/__dev/token", get(dev_token))
        .route("/__dev/jwks.json", get(jwks))
        .route("/__dev/jobs/{function}", axum::routing::post(run_job))
        .fallback(dispatch)
        .with_state(gw)
}

fn gw_message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

async fn page(State(gw): State<Arc<Gateway>>) -> Response {
    Html(crate::page::render(&gw.config.demo_account)).into_response()
}

async fn jwks(State(gw): State<Arc<Gateway>>) -> Response {
    axum::Json(gw.keys.jwks()).into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    account_id: Option<String>,
    sub: Option<String>,
    scope: Option<String>,
    aud: Option<String>,
    /// Seconds until expiry; negative mints an expired token.
    expires_in: Option<i64>,
}

/// Dev only: a Portal token for an account. Exists in the local gateway, never in a function.
async fn dev_token(State(gw): State<Arc<Gateway>>, Query(q): Query<TokenQuery>) -> Response {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = now + q.expires_in.unwrap_or(3600);
    let account = q
        .account_id
        .unwrap_or_else(|| gw.config.demo_account.clone());
    let mut claims = Map::new();
    claims.insert("iss".into(), gw.config.issuer.clone().into());
    claims.insert(
        "aud".into(),
        q.aud.unwrap_or_else(|| gw.config.audience.clone()).into(),
    );
    claims.insert(
        "sub".into(),
        q.sub.unwrap_or_else(|| format!("user-of-{account}")).into(),
    );
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), exp.into());
    claims.insert(
        "scope".into(),
        q.scope.unwrap_or_else(|| "zoom.integration".into()).into(),
    );
    claims.insert(gw.config.account_claim.clone(), account.into());
    match gw.keys.mint(&claims) {
        Ok(t) => axum::Json(json!({"token": t, "expires_at": exp})).into_response(),
        Err(_) => gw_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// Dev only: run a scheduled function now (as its schedule would).
async fn run_job(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Path(function): axum::extract::Path<String>,
) -> Response {
    let scheduled = gw.template.schedules.iter().any(|s| s.function == function);
    let Some(f) = Function::from_binary(&function).filter(|_| scheduled) else {
        return gw_message(StatusCode::NOT_FOUND, "Not Found");
    };
    match f.run_job(&gw.ctx).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => {
            tracing::error!(error = %e, function, "job failed");
            gw_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Runs every schedule of the template on a timer, as EventBridge would.
pub fn spawn_schedules(gw: Arc<Gateway>) {
    for s in gw.template.schedules.clone() {
        let (Some(period), Some(f)) = (s.period(), Function::from_binary(&s.function)) else {
            tracing::warn!(function = %s.function, expression = %s.expression, "schedule not understood; not run locally");
            continue;
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await; // the first tick is immediate; EventBridge waits a period
            loop {
                tick.tick().await;
                match f.run_job(&gw.ctx).await {
                    Ok(v) => tracing::info!(function = %s.function, result = %v, "scheduled run"),
                    Err(e) => {
                        tracing::error!(function = %s.function, error = %e, "scheduled run failed")
                    }
                }
            }
        });
    }
}

/// The SQS event source mapping: polls the queue, invokes the function with
/// the SQS event, deletes what succeeded (`ReportBatchItemFailures`); failed
/// messages come back after their visibility timeout, and the queue's redrive
/// policy moves them to the DLQ after repeated failure.
pub fn spawn_sqs_poller(gw: Arc<Gateway>, queue_url: String, function: Function, batch_size: i32) {
    tokio::spawn(async move {
        let sqs = gw.ctx.sqs().await.clone();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(batch_size.clamp(1, 10))
                .wait_time_seconds(1)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await;
            let msgs = match got {
                Ok(o) => o.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS receive failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if msgs.is_empty() {
                continue;
            }
            let records: Vec<Value> = msgs
                .iter()
                .map(|m| {
                    let count = m
                        .attributes()
                        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                           "attributes": {"ApproximateReceiveCount": count}, "eventSource": "aws:sqs",
                           "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:local", "awsRegion": "us-east-1"})
                })
                .collect();
            let failed: Vec<String> = match function
                .run_event(&gw.ctx, json!({"Records": records}))
                .await
            {
                Ok(v) => v["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                Err(e) => {
                    tracing::error!(error = %e, "event-source function failed");
                    msgs.iter()
                        .filter_map(|m| m.message_id().map(str::to_owned))
                        .collect()
                }
            };
            for m in &msgs {
                if m.message_id()
                    .is_some_and(|id| failed.iter().any(|f| f == id))
                {
                    continue;
                }
                if let Some(h) = m.receipt_handle() {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(h)
                        .send()
                        .await;
                }
            }
        }
    });
}

/// Every template route: authorize, build the API Gateway v2 event, run the handler.
async fn dispatch(
    State(gw): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return gw_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let path = uri.path();
    let Some((route, params)) = gw.template.match_route(method.as_str(), path) else {
        return gw_message(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(function) = Function::from_binary(&route.function) else {
        return gw_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let authorizer = match &route.auth {
        RouteAuth::None => Value::Null,
        RouteAuth::Jwt { scopes } => {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            match gw
                .keys
                .verify(auth, &gw.config.issuer, &gw.config.audience, scopes)
            {
                Ok((claims, scopes)) => json!({"jwt": {"claims": claims, "scopes": scopes}}),
                Err(AuthFailure::Unauthorized) => {
                    return gw_message(StatusCode::UNAUTHORIZED, "Unauthorized");
                }
                Err(AuthFailure::Forbidden) => {
                    return gw_message(StatusCode::FORBIDDEN, "Forbidden");
                }
            }
        }
    };
    let event = api_gateway_event(
        &route.method,
        &route.path,
        path,
        uri.query(),
        &headers,
        &params,
        &body,
        authorizer,
    );
    let req = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the Lambda request");
            return gw_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    match function.call(&gw.ctx, req).await {
        Ok(resp) => to_axum(resp),
        Err(e) => {
            tracing::error!(error = %e, function = %route.function, "handler failed");
            gw_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// The API Gateway HTTP API (payload 2.0) event for one request, as the
/// real service would send it to the function.
#[allow(clippy::too_many_arguments)]
pub fn api_gateway_event(
    route_method: &str,
    route_path: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
    body: &[u8],
    authorizer: Value,
) -> Value {
    let mut hmap: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if k == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        hmap.entry(k.as_str().to_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let mut qmap: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        qmap.entry(k.into_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v)
            })
            .or_insert(v.into_owned());
    }
    let now = time::OffsetDateTime::now_utc();
    let (body_val, b64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(s) => (Value::String(s.to_owned()), false),
        Err(_) => (Value::String(STANDARD.encode(body)), true),
    };
    let host = hmap
        .get("host")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut ctx = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": host,
        "domainPrefix": "local",
        "http": {
            "method": route_method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": hmap.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": ulid::Ulid::new().to_string(),
        "routeKey": format!("{route_method} {route_path}"),
        "stage": "$default",
        "time": now.unix_timestamp().to_string(),
        "timeEpoch": now.unix_timestamp() * 1000,
    });
    if let (Some(o), false) = (ctx.as_object_mut(), authorizer.is_null()) {
        o.insert("authorizer".into(), authorizer);
    }
    let mut ev = json!({
        "version": "2.0",
        "routeKey": format!("{route_method} {route_path}"),
        "rawPath": path,
        "rawQueryString": query.unwrap_or(""),
        "headers": hmap,
        "requestContext": ctx,
        "isBase64Encoded": b64,
    });
    let Some(o) = ev.as_object_mut() else {
        return ev;
    };
    if !cookies.is_empty() {
        o.insert("cookies".into(), json!(cookies));
    }
    if !qmap.is_empty() {
        o.insert("queryStringParameters".into(), json!(qmap));
    }
    if !params.is_empty() {
        o.insert("pathParameters".into(), json!(params));
    }
    if !body_val.is_null() {
        o.insert("body".into(), body_val);
    }
    ev
}

fn to_axum(resp: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => vec![],
        lambda_http::Body::Text(s) => s.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => vec![],
    };
    let mut r = Response::new(axum::body::Body::from(bytes));
    *r.status_mut() = parts.status;
    *r.headers_mut() = parts.headers;
    r
}
