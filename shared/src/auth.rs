//! The Portal caller, as API Gateway's JWT authorizer hands it over in the
//! request context (`requestContext.authorizer.jwt.claims`). The authorizer has
//! already checked signature, issuer, audience, expiry and scope; the handler
//! additionally binds the caller to the account in the path.

use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizerJwtDescription;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::http::Problem;
use crate::ids::{PortalAccountId, PortalUserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: PortalAccountId,
    pub user: PortalUserId,
    pub scopes: Vec<String>,
}

/// The JWT authorizer's part of the request context, or 401.
fn jwt(req: &Request) -> Result<&ApiGatewayRequestAuthorizerJwtDescription, Problem> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(Problem::unauthorized());
    };
    ctx.authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .ok_or_else(Problem::unauthorized)
}

/// The token's scopes: the authorizer's list, else the `scope` claim.
fn scopes(jwt: &ApiGatewayRequestAuthorizerJwtDescription) -> Vec<String> {
    jwt.scopes.clone().unwrap_or_else(|| {
        jwt.claims
            .get("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    })
}

/// Reads the caller from the authorizer context. Missing or malformed claims → 401.
pub fn caller(req: &Request, account_claim: &str) -> Result<Caller, Problem> {
    let jwt = jwt(req)?;
    let account = jwt
        .claims
        .get(account_claim)
        .and_then(|v| PortalAccountId::parse(v).ok())
        .ok_or_else(Problem::unauthorized)?;
    let user = jwt
        .claims
        .get("sub")
        .and_then(|v| PortalUserId::parse(v).ok())
        .ok_or_else(Problem::unauthorized)?;
    let scopes = jwt.scopes.clone().unwrap_or_else(|| {
        jwt.claims
            .get("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    });
    Ok(Caller {
        account,
        user,
        scopes,
    })
}

/// The `{account_id}` path parameter, parsed, and owned by the caller.
/// Another tenant's id gets the same 403 whether or not it exists.
pub fn path_account(req: &Request, caller: &Caller) -> Result<PortalAccountId, Problem> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("account_id"))
        .ok_or_else(|| {
            Problem::bad_request("account_id", "the account id is missing from the path")
        })?;
    let id = PortalAccountId::parse(raw)
        .map_err(|e| Problem::bad_request("account_id", e.to_string()))?;
    if id != caller.account {
        return Err(Problem::forbidden());
    }
    Ok(id)
}

/// A carrier operator: the token must carry the carrier-admin scope (the
/// authorizer already requires it on carrier routes; this is the second check).
/// Customers get 403.
pub fn carrier(req: &Request, scope: &str) -> Result<PortalUserId, Problem> {
    let jwt = jwt(req)?;
    let user = jwt
        .claims
        .get("sub")
        .and_then(|v| PortalUserId::parse(v).ok())
        .ok_or_else(Problem::unauthorized)?;
    let scopes = scopes(jwt);
    if !scopes.iter().any(|s| s == scope) {
        return Err(Problem::new(
            403,
            "Forbidden",
            "this operation is for the carrier's operators",
        ));
    }
    Ok(user)
}

/// A path parameter parsed as an account id, without the tenant check (carrier routes).
pub fn path_account_unchecked(req: &Request) -> Result<PortalAccountId, Problem> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("account_id"))
        .ok_or_else(|| {
            Problem::bad_request("account_id", "the account id is missing from the path")
        })?;
    PortalAccountId::parse(raw).map_err(|e| Problem::bad_request("account_id", e.to_string()))
}
