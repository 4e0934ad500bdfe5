//! The webhook sender: signs exactly the bytes it sends (compact JSON), with
//! Zoom's headers; validates endpoints (CRC); retries failed deliveries on
//! Zoom's schedule (5, 20, 60 minutes; compressible for tests).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::state::{SimState, lock, random_token};

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    /// Waits before the 1st, 2nd, 3rd retry (Zoom: 5, 20, 60 minutes).
    #[serde(default = "zoom_schedule")]
    pub retry_schedule_ms: Vec<u64>,
}

fn zoom_schedule() -> Vec<u64> {
    vec![5 * 60_000, 20 * 60_000, 60 * 60_000]
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub body: String,
    pub attempts: Vec<Attempt>,
    pub delivered: bool,
    pub finished: bool,
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

/// One signed POST, as Zoom sends it.
async fn post_signed(
    http: &reqwest::Client,
    cfg: &WebhookConfig,
    client_id: &str,
    body: &[u8],
) -> Attempt {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(&cfg.secret, &[b"v0:", ts.as_bytes(), b":", body])
    );
    let r = http
        .post(&cfg.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("user-agent", "Zoom Marketplace/1.0a")
        .header("clientid", client_id)
        .header("x-zm-request-timestamp", ts)
        .header("x-zm-signature", sig)
        .header("x-zm-trackingid", format!("Webhook_{}", random_token(12)))
        .body(body.to_vec())
        .send()
        .await;
    match r {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Attempt {
                status: Some(status),
                ok: status == 200 || status == 204,
                error: None,
            }
        }
        Err(e) => Attempt {
            status: None,
            ok: false,
            error: Some(e.without_url().to_string()),
        },
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Queues a delivery of `event` and returns its id; it runs in the background.
pub fn deliver(state: &SimState, body: Vec<u8>, event: &str) -> Option<String> {
    let (cfg, client_id, id) = {
        let mut sim = lock(state);
        let cfg = sim.webhook.clone()?;
        let client_id = sim.apps.keys().next().cloned().unwrap_or_default();
        let id = random_token(9);
        sim.deliveries.push(Delivery {
            id: id.clone(),
            event: event.to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
            attempts: vec![],
            delivered: false,
            finished: false,
        });
        (cfg, client_id, id)
    };
    let state = state.clone();
    let did = id.clone();
    tokio::spawn(async move {
        let http = http_client();
        let mut attempt_no = 0;
        loop {
            let a = post_signed(&http, &cfg, &client_id, &body).await;
            let ok = a.ok;
            let retry_in = cfg.retry_schedule_ms.get(attempt_no).copied();
            {
                let mut sim = lock(&state);
                if let Some(d) = sim.deliveries.iter_mut().find(|d| d.id == did) {
                    d.attempts.push(a);
                    d.delivered |= ok;
                    d.finished = ok || retry_in.is_none();
                }
            }
            match (ok, retry_in) {
                (true, _) | (false, None) => break,
                (false, Some(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
            attempt_no += 1;
        }
    });
    Some(id)
}

/// Compact JSON: the bytes signed are the bytes sent.
pub fn compact(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub async fn configure(State(s): State<SimState>, Json(cfg): Json<WebhookConfig>) -> Response {
    lock(&s).webhook = Some(cfg);
    StatusCode::NO_CONTENT.into_response()
}

/// `endpoint.url_validation`: sends a plainToken, checks the answer.
pub async fn validate(State(s): State<SimState>) -> Response {
    let Some(cfg) = lock(&s).webhook.clone() else {
        return (StatusCode::CONFLICT, "no webhook configured").into_response();
    };
    let client_id = lock(&s).apps.keys().next().cloned().unwrap_or_default();
    let plain = random_token(16);
    let event_ts = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let body = compact(
        &json!({"payload": {"plainToken": plain}, "event_ts": event_ts, "event": "endpoint.url_validation"}),
    );
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(&cfg.secret, &[b"v0:", ts.as_bytes(), b":", &body])
    );
    let started = std::time::Instant::now();
    let r = http_client()
        .post(&cfg.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("user-agent", "Zoom Marketplace/1.0a")
        .header("clientid", client_id)
        .header("x-zm-request-timestamp", ts)
        .header("x-zm-signature", sig)
        .body(body)
        .send()
        .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (status, answer) = match r {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.json::<Value>().await.unwrap_or(Value::Null),
        ),
        Err(e) => {
            return Json(json!({"ok": false, "error": e.without_url().to_string()}))
                .into_response();
        }
    };
    let expected = hmac_hex(&cfg.secret, &[plain.as_bytes()]);
    let ok = (status == 200 || status == 204)
        && answer["plainToken"] == plain.as_str()
        && answer["encryptedToken"] == expected.as_str()
        && elapsed_ms < 3000;
    Json(json!({"ok": ok, "status": status, "elapsed_ms": elapsed_ms})).into_response()
}

#[derive(Deserialize)]
pub struct SendEvent {
    pub event: String,
    pub payload: Value,
    /// Put `event_ts` inside `payload` instead of at the top level.
    #[serde(default)]
    pub event_ts_in_payload: bool,
}

pub fn envelope(event: &str, mut payload: Value, in_payload: bool) -> Value {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    if in_payload {
        if let Some(o) = payload.as_object_mut() {
            o.insert("event_ts".into(), ts.into());
        }
        json!({"event": event, "payload": payload})
    } else {
        json!({"event": event, "event_ts": ts, "payload": payload})
    }
}

pub async fn send(State(s): State<SimState>, Json(e): Json<SendEvent>) -> Response {
    let body = compact(&envelope(&e.event, e.payload, e.event_ts_in_payload));
    match deliver(&s, body, &e.event) {
        Some(id) => (StatusCode::ACCEPTED, Json(json!({"delivery_id": id}))).into_response(),
        None => (StatusCode::CONFLICT, "no webhook configured").into_response(),
    }
}

pub async fn deliveries(State(s): State<SimState>) -> Response {
    Json(lock(&s).deliveries.clone()).into_response()
}

/// Sends a delivery's exact body again (a duplicate, as Zoom's retries are).
pub async fn resend(State(s): State<SimState>, Path(id): Path<String>) -> Response {
    let found = lock(&s)
        .deliveries
        .iter()
        .find(|d| d.id == id)
        .map(|d| (d.body.clone(), d.event.clone()));
    let Some((body, event)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match deliver(&s, body.into_bytes(), &event) {
        Some(id) => (StatusCode::ACCEPTED, Json(json!({"delivery_id": id}))).into_response(),
        None => (StatusCode::CONFLICT, "no webhook configured").into_response(),
    }
}

#[derive(Deserialize, Default)]
pub struct Uninstall {
    #[serde(default)]
    pub event_ts_in_payload: bool,
    /// Sent as given (bool or string); absent when null.
    #[serde(default)]
    pub user_data_retention: Option<Value>,
}

/// The customer removes the app in the Zoom Marketplace: the app's tokens for
/// the account stop working and `app_deauthorized` is sent.
pub async fn uninstall(
    State(s): State<SimState>,
    Path(account_id): Path<String>,
    body: Option<Json<Uninstall>>,
) -> Response {
    let u = body.map(|Json(u)| u).unwrap_or_default();
    let (client_id, user_id) = {
        let mut sim = lock(&s);
        let Some(acct) = sim.accounts.get(&account_id).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let client_id = sim.apps.keys().next().cloned().unwrap_or_default();
        sim.revoke_account(Some(&client_id), &account_id, "app uninstalled");
        (client_id, acct.owner.id)
    };
    let mut payload = json!({
        "account_id": account_id,
        "user_id": user_id,
        "signature": random_token(32),
        "deauthorization_time": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "client_id": client_id,
    });
    if let (Some(v), Some(o)) = (u.user_data_retention, payload.as_object_mut()) {
        o.insert("user_data_retention".into(), v);
    }
    let body = compact(&envelope(
        "app_deauthorized",
        payload,
        u.event_ts_in_payload,
    ));
    match deliver(&s, body, "app_deauthorized") {
        Some(id) => (StatusCode::ACCEPTED, Json(json!({"delivery_id": id}))).into_response(),
        None => (StatusCode::ACCEPTED, Json(json!({"delivery_id": null}))).into_response(),
    }
}
