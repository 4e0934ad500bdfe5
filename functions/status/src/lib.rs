//! `GET /v1/accounts/{account_id}/zoom` (Portal JWT): the connection status the
//! Portal shows (VERIFIED badge, authorization code, capabilities). Never tokens.

use lambda_http::{Body, Error, Request, Response};
use shared::http::{Problem, json};
use shared::{AppContext, auth, install_flow};

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    Ok(run(ctx, &req).await.unwrap_or_else(Problem::into_response))
}

async fn run(ctx: &AppContext, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = auth::caller(req, &ctx.config.portal_account_claim)?;
    let account = auth::path_account(req, &caller)?;
    let view = install_flow::status(ctx, &account)
        .await
        .map_err(|e| e.problem())?;
    Ok(json(200, &view))
}
