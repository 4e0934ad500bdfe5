//! zoom-sim: a faithful stand-in for Zoom on loopback (see
//! `../shared/reference/zoom-api.md`, §1 and §7). It is a real HTTP server:
//! OAuth authorize (consent page) and token endpoints with single-use codes,
//! PKCE and rotating single-use refresh tokens, `/v2/users/me`, and a
//! test-control API under `/_sim` (apps, accounts, faults, counters, clock,
//! auto-approve).
//!
//! It never logs a token, code or secret.

// Handlers return a ready HTTP answer as their error: that is the point of them.
#![allow(clippy::result_large_err)]

mod control;
mod oauth;
pub mod phone;
mod state;
pub mod webhooks;

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use state::{Sim, SimState};

/// The router over one shared simulator state.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/authorize/decision", post(oauth::decision))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/v2/users/me", get(oauth::users_me))
        .route(
            "/v2/number_management/peering_numbers",
            get(phone::peering_list)
                .post(phone::peering_add)
                .patch(phone::peering_update)
                .delete(phone::peering_delete),
        )
        .route("/v2/phone/numbers", get(phone::phone_numbers))
        .route("/v2/phone/{kind}", get(phone::list_extensions))
        .route("/v2/phone/{kind}/{id}", get(phone::get_extension))
        .route("/v2/phone/{kind}/{id}/phone_numbers", post(phone::assign))
        .route(
            "/v2/phone/{kind}/{id}/phone_numbers/{number}",
            axum::routing::delete(phone::unassign),
        )
        .merge(control::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let base = format!("http://{}", listener.local_addr()?);
    let state: SimState = Arc::new(Mutex::new(Sim::new(base)));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A simulator running on a background task of the current runtime, on
/// 127.0.0.1 and a free port. Dropping the handle stops it.
pub struct SimHandle {
    pub base_url: String,
    pub state: SimState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimHandle {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state: SimState = Arc::new(Mutex::new(Sim::new(base_url.clone())));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            base_url,
            state,
            stop: Some(tx),
        })
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Fault injection: a matching fault delays and/or replaces the answer.
async fn faults(State(state): State<SimState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(req).await;
    }
    let fault = state::lock(&state).take_fault(req.method().as_str(), &path);
    let Some(f) = fault else {
        return next.run(req).await;
    };
    if f.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(f.delay_ms)).await;
    }
    if f.drop {
        // Ends the connection task without an answer; the client sees a reset.
        std::panic::resume_unwind(Box::new("injected connection drop"));
    }
    match f.status {
        None => next.run(req).await,
        Some(status) => {
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            let body = f.body.unwrap_or_else(
                || serde_json::json!({"code": status.as_u16(), "message": "Injected fault."}),
            );
            let mut resp = (status, axum::Json(body)).into_response();
            for (k, v) in f.headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
    }
}
