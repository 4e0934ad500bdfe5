//! The test-control API under `/_sim` (never part of Zoom's contract).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::state::{App, Fault, SimState, lock};

pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/apps", post(add_app))
        .route("/_sim/accounts", post(add_account).get(list_accounts))
        .route("/_sim/accounts/{account_id}/revoke", post(revoke_account))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route(
            "/_sim/auto-approve",
            post(auto_approve).delete(no_auto_approve),
        )
        .route("/_sim/counters", get(counters))
        .route("/_sim/grants", get(grants))
        .route("/_sim/clock", post(clock))
        .route("/_sim/accounts/{account_id}/rate_plan", post(rate_plan))
        .route("/_sim/accounts/{account_id}/numbers", get(account_numbers))
        .route("/_sim/webhooks", post(crate::webhooks::configure))
        .route("/_sim/webhooks/validate", post(crate::webhooks::validate))
        .route("/_sim/webhooks/send", post(crate::webhooks::send))
        .route(
            "/_sim/webhooks/deliveries",
            get(crate::webhooks::deliveries),
        )
        .route(
            "/_sim/webhooks/deliveries/{id}/resend",
            post(crate::webhooks::resend),
        )
        .route(
            "/_sim/accounts/{account_id}/uninstall",
            post(crate::webhooks::uninstall),
        )
}

async fn add_app(State(s): State<SimState>, Json(app): Json<App>) -> Response {
    lock(&s).apps.insert(app.client_id.clone(), app);
    StatusCode::CREATED.into_response()
}

#[derive(Deserialize)]
struct NewAccount {
    account_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

async fn add_account(State(s): State<SimState>, Json(a): Json<NewAccount>) -> Response {
    let acct = lock(&s).add_account(a.account_id, a.email, a.name);
    (StatusCode::CREATED, Json(acct)).into_response()
}

async fn list_accounts(State(s): State<SimState>) -> Response {
    let sim = lock(&s);
    Json(sim.accounts.values().cloned().collect::<Vec<_>>()).into_response()
}

async fn revoke_account(State(s): State<SimState>, Path(account_id): Path<String>) -> Response {
    let n = lock(&s).revoke_account(None, &account_id, "revoked through the control API");
    Json(json!({"revoked": n})).into_response()
}

async fn add_fault(State(s): State<SimState>, Json(f): Json<Fault>) -> Response {
    lock(&s).faults.push(f);
    StatusCode::CREATED.into_response()
}

async fn clear_faults(State(s): State<SimState>) -> Response {
    lock(&s).faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct AutoApprove {
    account_id: String,
}

async fn auto_approve(State(s): State<SimState>, Json(a): Json<AutoApprove>) -> Response {
    let mut sim = lock(&s);
    if !sim.accounts.contains_key(&a.account_id) {
        return (StatusCode::NOT_FOUND, "unknown account").into_response();
    }
    sim.auto_approve = Some(a.account_id);
    StatusCode::NO_CONTENT.into_response()
}

async fn no_auto_approve(State(s): State<SimState>) -> Response {
    lock(&s).auto_approve = None;
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(State(s): State<SimState>) -> Response {
    Json(lock(&s).counters.clone()).into_response()
}

#[derive(Deserialize)]
struct GrantQuery {
    account_id: Option<String>,
}

/// Grants with their current tokens: for tests that must know what Zoom issued.
async fn grants(State(s): State<SimState>, Query(q): Query<GrantQuery>) -> Response {
    let sim = lock(&s);
    let v: Vec<_> = sim
        .grants
        .values()
        .filter(|g| q.account_id.as_ref().is_none_or(|a| *a == g.account_id))
        .cloned()
        .collect();
    Json(v).into_response()
}

#[derive(Deserialize)]
struct Clock {
    advance_secs: i64,
}

async fn clock(State(s): State<SimState>, Json(c): Json<Clock>) -> Response {
    let mut sim = lock(&s);
    sim.clock_offset_secs += c.advance_secs;
    Json(json!({"offset_secs": sim.clock_offset_secs})).into_response()
}

#[derive(Deserialize)]
struct RatePlan {
    plan: String,
}

/// `business` (default), `pro` or `off`.
async fn rate_plan(
    State(s): State<SimState>,
    Path(account_id): Path<String>,
    Json(p): Json<RatePlan>,
) -> Response {
    lock(&s).rate_plans.insert(account_id, p.plan);
    StatusCode::NO_CONTENT.into_response()
}

/// The account's numbers with assignees: for tests comparing final state.
async fn account_numbers(State(s): State<SimState>, Path(account_id): Path<String>) -> Response {
    let sim = lock(&s);
    let Some(acct) = sim.phone.get(&account_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let v: Vec<_> = acct
        .numbers
        .values()
        .map(|p| json!({"number": p.phone_number, "id": p.id, "status": p.status, "assignee": acct.assignees.get(&p.phone_number)}))
        .collect();
    Json(v).into_response()
}
