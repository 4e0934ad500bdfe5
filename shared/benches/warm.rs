//! Warm-path work measured in process (`cargo bench -p shared`): webhook
//! signature verification over an 8 KiB body, and the in-process part of the
//! status and webhook handlers (parse the API Gateway event, read the caller,
//! check the tenant, build and serialise the answer). Storage is excluded: the
//! connection item is given, as if read.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use shared::store::{ConnectionItem, ConnectionStatus};

fn body_8k() -> Vec<u8> {
    let pad = "x".repeat(8 * 1024 - 120);
    format!(r#"{{"event":"phone.callee_ended","event_ts":1654503849680,"payload":{{"account_id":"q6gBJVO5TzexKYTb_I2rpg","pad":"{pad}"}}}}"#)
        .into_bytes()
}

fn webhook(c: &mut Criterion) {
    let body = body_8k();
    let ts = "1688752773";
    let sig = shared::webhook::sign("current-secret", ts, &body);
    let secrets = vec![
        SecretString::from("current-secret"),
        SecretString::from("previous-secret"),
    ];
    c.bench_function("webhook verify 8 KiB (2 secrets)", |b| {
        b.iter(|| {
            shared::webhook::verify(
                black_box(&secrets),
                Some(ts),
                Some(&sig),
                black_box(&body),
                1688752773,
            )
        })
    });
    c.bench_function("webhook verify + parse envelope 8 KiB", |b| {
        b.iter(|| {
            let i = shared::webhook::verify(
                &secrets,
                Some(ts),
                Some(&sig),
                black_box(&body),
                1688752773,
            );
            let e: shared::webhook::Envelope =
                serde_json::from_slice(black_box(&body)).unwrap_or_else(|_| unreachable!());
            (i, e.event.len())
        })
    });
}

fn status(c: &mut Criterion) {
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "GET /v1/accounts/{account_id}/zoom", "rawPath": "/v1/accounts/acct-1/zoom", "rawQueryString": "",
        "headers": {"host": "api.example.com", "authorization": "Bearer x"}, "pathParameters": {"account_id": "acct-1"},
        "requestContext": {"accountId": "1", "apiId": "x", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "GET", "path": "/v1/accounts/acct-1/zoom", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "b"},
            "requestId": "r", "routeKey": "GET /v1/accounts/{account_id}/zoom", "stage": "$default", "time": "t", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"portal_account_id": "acct-1", "sub": "u1"}, "scopes": ["zoom.integration"]}}},
        "isBase64Encoded": false
    })
    .to_string();
    let conn = ConnectionItem {
        pk: "ACCOUNT#acct-1".into(),
        sk: "CONNECTION".into(),
        portal_account_id: shared::ids::PortalAccountId::parse("acct-1")
            .unwrap_or_else(|_| unreachable!()),
        status: ConnectionStatus::Verified,
        zoom_account_id: shared::ids::ZoomAccountId::parse("q6gBJVO5TzexKYTb_I2rpg").ok(),
        scopes: vec![
            "phone:read:admin".into(),
            "phone:write:admin".into(),
            "phone_peering:write:admin".into(),
        ],
        verified_at: Some("2026-12-04T20:00:00Z".into()),
        verified_by: None,
        authorization_code: Some("obBEe8ewaL_KdyNjniT4KPd8ffDWt9fGB".into()),
        tokens: None,
        access_expires_at: None,
        token_version: 1,
        pending_until: None,
        pending_state: None,
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
    let now = time::OffsetDateTime::now_utc();
    c.bench_function(
        "status handler in-process (event → JSON answer, storage excluded)",
        |b| {
            b.iter(|| {
                let req = lambda_http::request::from_str(black_box(&event))
                    .unwrap_or_else(|_| unreachable!());
                let caller = shared::auth::caller(&req, "portal_account_id")
                    .unwrap_or_else(|_| unreachable!());
                let account =
                    shared::auth::path_account(&req, &caller).unwrap_or_else(|_| unreachable!());
                let view = shared::install_flow::status_view(Some(black_box(&conn)), now);
                (account, shared::http::json(200, &view))
            })
        },
    );
}

criterion_group!(benches, webhook, status);
criterion_main!(benches);
