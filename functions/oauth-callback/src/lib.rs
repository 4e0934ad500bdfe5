//! `GET /zoom/oauth/callback` (public): Zoom's redirect after consent.
//! Exchanges the code, marks the account VERIFIED and sends the browser back
//! to the Portal; bad states get a plain page and change nothing.

use lambda_http::{Body, Error, Request, RequestExt, Response};
use secrecy::SecretString;
use shared::AppContext;
use shared::http::{html_page, redirect};
use shared::install_flow::{self, BadState, CallbackOutcome, CallbackParams};

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    let q = req.query_string_parameters();
    let params = CallbackParams {
        code: q.first("code").map(|c| SecretString::from(c.to_owned())),
        state: q.first("state").map(str::to_owned),
        error: q.first("error").map(str::to_owned),
    };
    Ok(match install_flow::complete_install(ctx, params).await {
        Ok(CallbackOutcome::Redirect(url)) => redirect(&url),
        Ok(CallbackOutcome::BadState(BadState::Unknown)) => html_page(
            400,
            "This Zoom sign-in link is not valid",
            "It is unknown, was already used, or belongs to another session. Nothing was \
             changed. Start again from the Portal: Settings > Integration > Install & Configure.",
        ),
        Ok(CallbackOutcome::BadState(BadState::Expired)) => html_page(
            400,
            "This Zoom sign-in link has expired",
            "Sign-in links last ten minutes. Nothing was changed. Start again from the \
             Portal: Settings > Integration > Install & Configure.",
        ),
        Err(e) => {
            let p = e.problem();
            html_page(
                p.status,
                "The Zoom connection could not be completed",
                &p.detail,
            )
        }
    })
}
