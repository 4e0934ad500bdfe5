//! `POST /zoom/webhooks` (public, signed by Zoom): URL validation,
//! deauthorization, number events. Answers well inside Zoom's 3 seconds.

use lambda_http::{Body, Error, Request, Response};
use serde_json::json;
use shared::AppContext;
use shared::http::{Problem, json};
use shared::webhook::{self, Outcome};

/// The single value of a header; several values are joined with ',' (as API
/// Gateway does), which the signature check refuses.
fn header(req: &Request, name: &str) -> Option<String> {
    let vals: Vec<&str> = req
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!vals.is_empty()).then(|| vals.join(","))
}

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    let body: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    let ts = header(&req, "x-zm-request-timestamp");
    let sig = header(&req, "x-zm-signature");
    Ok(
        match webhook::handle_delivery(ctx, ts.as_deref(), sig.as_deref(), body).await {
            Ok(Outcome::Rejected(_)) => Problem::unauthorized_webhook().into_response(),
            Ok(Outcome::UrlValidation {
                plain_token,
                encrypted_token,
            }) => json(
                200,
                &json!({"plainToken": plain_token, "encryptedToken": encrypted_token}),
            ),
            Ok(Outcome::Processed { .. } | Outcome::Duplicate | Outcome::Ignored { .. }) => {
                json(200, &json!({"status": "ok"}))
            }
            Ok(Outcome::Malformed(what)) => Problem::bad_request("body", what).into_response(),
            Err(e) => {
                lambda_http::tracing::error!(error = %e, "webhook handling failed");
                Problem::internal().into_response()
            }
        },
    )
}
