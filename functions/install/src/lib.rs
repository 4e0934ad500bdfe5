//! `POST /v1/accounts/{account_id}/zoom/install` (Portal JWT): starts an
//! install and answers with Zoom's authorize URL.

use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use shared::http::{Problem, json, optional_json_body};
use shared::{AppContext, auth, install_flow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    return_to: Option<String>,
}

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    Ok(run(ctx, &req).await.unwrap_or_else(Problem::into_response))
}

async fn run(ctx: &AppContext, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = auth::caller(req, &ctx.config.portal_account_claim)?;
    let account = auth::path_account(req, &caller)?;
    let body: Option<InstallBody> = optional_json_body(req)?;
    let return_to = body.and_then(|b| b.return_to);
    let started = install_flow::begin_install(ctx, &caller, &account, return_to.as_deref())
        .await
        .map_err(|e| e.problem())?;
    Ok(json(200, &started))
}
