//! `GET /v1/accounts/{account_id}/zoom/removal-check` (Portal JWT): what still
//! blocks removing the app — every carrier number unassigned and ported away
//! (or released) first, and no operation running.

use lambda_http::{Body, Error, Request, Response};
use shared::http::{Problem, json};
use shared::{AppContext, auth, numbers};

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    Ok(run(ctx, &req).await.unwrap_or_else(Problem::into_response))
}

async fn run(ctx: &AppContext, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = auth::caller(req, &ctx.config.portal_account_claim)?;
    let account = auth::path_account(req, &caller)?;
    let check = numbers::removal_check(ctx, &account)
        .await
        .map_err(|e| e.problem())?;
    Ok(json(200, &check))
}
