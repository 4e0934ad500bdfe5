//! Zoom's OAuth endpoints and `/v2/users/me`, per the reference §1 and §7.1.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::state::{ACCESS_TTL, CODE_TTL, CodeGrant, SimState, lock, random_token};

fn oauth_error(status: StatusCode, reason: &str, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"reason": reason, "error": error})),
    )
        .into_response()
}

fn api_error(status: StatusCode, code: i64, message: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response();
    r.headers_mut().insert("x-zm-trackingid", tracking_id());
    r
}

fn tracking_id() -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("v=2.0;clid=us06;rid=SIM_{}", random_token(9)))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("v=2.0;clid=us06;rid=SIM"))
}

fn error_page(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><title>Zoom - Error</title></head><body>\
             <h1>Sorry, you can't use this app</h1><p>Error code: {code}</p><p>{}</p></body></html>",
            escape(message)
        )),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The checked parameters of an authorize request.
struct AuthzRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    challenge: Option<(String, String)>,
}

fn check_authorize(
    sim: &crate::Sim,
    q: &HashMap<String, String>,
) -> Result<AuthzRequest, Response> {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let Some(app) = sim.apps.get(&client_id) else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4702,
            "Invalid client_id.",
        ));
    };
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4709,
            "Redirect URI mismatch.",
        ));
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            4700,
            "Invalid response_type.",
        ));
    }
    let challenge = match q.get("code_challenge") {
        None => None,
        Some(c) => {
            let method = q
                .get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into());
            let valid_chars = c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !(43..=128).contains(&c.len())
                || !valid_chars
                || !(method == "S256" || method == "plain")
            {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    4700,
                    "Invalid PKCE parameters.",
                ));
            }
            Some((c.clone(), method))
        }
    };
    Ok(AuthzRequest {
        client_id,
        redirect_uri,
        state: q.get("state").cloned(),
        challenge,
    })
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut u) = url::Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, 4709, "Redirect URI mismatch.");
    };
    {
        let mut qp = u.query_pairs_mut();
        for (k, v) in pairs {
            qp.append_pair(k, v);
        }
    }
    // Zoom answers 302 Found.
    (
        StatusCode::FOUND,
        [(header::LOCATION, u.as_str().to_owned())],
    )
        .into_response()
}

fn issue_code(sim: &mut crate::Sim, a: &AuthzRequest, account_id: &str) -> Option<String> {
    let user_id = sim.accounts.get(account_id)?.owner.id.clone();
    let code = random_token(24);
    let expires_at = sim.now() + CODE_TTL;
    sim.codes.insert(
        code.clone(),
        CodeGrant {
            client_id: a.client_id.clone(),
            account_id: account_id.into(),
            user_id,
            redirect_uri: a.redirect_uri.clone(),
            challenge: a.challenge.clone(),
            expires_at,
            used: false,
        },
    );
    Some(code)
}

/// `GET /oauth/authorize`: validates, then shows the consent page (or, with
/// auto-approve on, redirects with a code at once).
pub async fn authorize(
    State(s): State<SimState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut sim = lock(&s);
    sim.counters.authorize_requests += 1;
    let a = match check_authorize(&sim, &q) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some(account) = sim.auto_approve.clone() {
        let Some(code) = issue_code(&mut sim, &a, &account) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                4700,
                "Auto-approve account does not exist.",
            );
        };
        let mut pairs = vec![("code", code.as_str())];
        if let Some(st) = a.state.as_deref() {
            pairs.push(("state", st));
        }
        return redirect_with(&a.redirect_uri, &pairs);
    }
    let app = &sim.apps[&a.client_id];
    let scopes: String = app
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let accounts: String = sim
        .accounts
        .values()
        .map(|acct| {
            format!(
                "<option value=\"{}\">{} — {}</option>",
                escape(&acct.account_id),
                escape(&acct.owner.email),
                escape(&acct.name)
            )
        })
        .collect();
    let hidden = |k: &str, v: &str| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            escape(v)
        )
    };
    let (ch, m) = a.challenge.clone().unwrap_or_default();
    let form_fields = [
        hidden("client_id", &a.client_id),
        hidden("redirect_uri", &a.redirect_uri),
        hidden("response_type", "code"),
        a.state
            .as_deref()
            .map(|st| hidden("state", st))
            .unwrap_or_default(),
        if ch.is_empty() {
            String::new()
        } else {
            hidden("code_challenge", &ch) + &hidden("code_challenge_method", &m)
        },
    ]
    .concat();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Zoom - Authorize {name}</title>
<style>body{{font-family:sans-serif;background:#f4f6fa;margin:0}}main{{max-width:34em;margin:3em auto;background:#fff;padding:2em;border-radius:12px;box-shadow:0 2px 8px #0002}}
h1{{font-size:1.3em}}.zoom{{color:#0b5cff;font-weight:bold;font-size:1.6em}}button{{font-size:1em;padding:.6em 1.6em;border-radius:8px;border:1px solid #0b5cff;margin-right:1em;cursor:pointer}}
#allow{{background:#0b5cff;color:#fff}}#deny{{background:#fff;color:#0b5cff}}</style></head>
<body><main><div class="zoom">zoom <small style="font-size:.5em;color:#888">(simulator)</small></div>
<h1>{name} would like to access your Zoom account</h1>
<p>Permissions requested:</p><ul id="scopes">{scopes}</ul>
<form method="post" action="/oauth/authorize/decision">{form_fields}
<p><label>Signed in as <select name="account_id" id="account">{accounts}</select></label></p>
<button id="allow" name="decision" value="allow" type="submit">Allow</button>
<button id="deny" name="decision" value="deny" type="submit">Deny</button>
</form></main></body></html>"#,
        name = escape(&app.name)
    ))
    .into_response()
}

/// `POST /oauth/authorize/decision`: the consent page's Allow / Deny.
pub async fn decision(
    State(s): State<SimState>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut sim = lock(&s);
    let a = match check_authorize(&sim, &f) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let st = a.state.clone();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    if f.get("decision").map(String::as_str) == Some("allow") {
        let account = f.get("account_id").cloned().unwrap_or_default();
        code = match issue_code(&mut sim, &a, &account) {
            Some(c) => c,
            None => return error_page(StatusCode::BAD_REQUEST, 4700, "Unknown account."),
        };
        pairs.push(("code", &code));
    } else {
        pairs.push(("error", "access_denied"));
    }
    if let Some(st) = st.as_deref() {
        pairs.push(("state", st));
    }
    redirect_with(&a.redirect_uri, &pairs)
}

fn basic_client(headers: &HeaderMap, sim: &crate::Sim) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    // oauth2 form-urlencodes both parts before Basic encoding (RFC 6749 §2.3.1).
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (decode(id)?, decode(secret)?);
    let app = sim.apps.get(&id)?;
    (app.client_secret == secret).then_some(id)
}

fn token_body(sim: &crate::Sim, g: &crate::state::Grant) -> Response {
    let mut r = axum::Json(json!({
        "access_token": g.access_token,
        "token_type": "bearer",
        "refresh_token": g.refresh_token,
        "expires_in": ACCESS_TTL,
        "scope": g.scopes.join(" "),
        "api_url": sim.base_url,
    }))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `POST /oauth/token`: `authorization_code` and `refresh_token` grants.
pub async fn token(State(s): State<SimState>, headers: HeaderMap, body: String) -> Response {
    let mut sim = lock(&s);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let count_err = |sim: &mut crate::Sim, e: &str| {
        *sim.counters.token_errors.entry(e.to_owned()).or_default() += 1;
    };
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Some(client_id) = basic_client(&headers, &sim) else {
        count_err(&mut sim, "invalid_client");
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "Invalid client_id or client_secret",
            "invalid_client",
        );
    };
    if !ct_ok {
        count_err(&mut sim, "invalid_request");
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "Unsupported content type",
            "invalid_request",
        );
    }
    *sim.counters
        .token_calls
        .entry(grant_type.clone())
        .or_default() += 1;
    match grant_type.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let now = sim.now();
            let Some(c) = sim.codes.get_mut(&code) else {
                count_err(&mut sim, "invalid_request");
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid authorization code {code}"),
                    "invalid_request",
                );
            };
            if c.used || c.client_id != client_id {
                c.used = true;
                count_err(&mut sim, "invalid_request");
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid authorization code {code}"),
                    "invalid_request",
                );
            }
            c.used = true;
            let c = c.clone();
            if now >= c.expires_at {
                count_err(&mut sim, "invalid_grant");
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "Authorization code expired",
                    "invalid_grant",
                );
            }
            if form.get("redirect_uri") != Some(&c.redirect_uri) {
                count_err(&mut sim, "invalid_request");
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "Redirect URI mismatch.",
                    "invalid_request",
                );
            }
            if let Some((challenge, method)) = &c.challenge {
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let computed = if method == "S256" {
                    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                } else {
                    verifier
                };
                if computed != *challenge {
                    count_err(&mut sim, "invalid_grant");
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "Invalid code_verifier",
                        "invalid_grant",
                    );
                }
            }
            let scopes = sim
                .apps
                .get(&client_id)
                .map(|a| a.scopes.clone())
                .unwrap_or_default();
            let g = sim.issue_grant(&client_id, &c.account_id, &c.user_id, scopes);
            tracing::info!(account_id = %g.account_id, grant = %g.grant_id, "authorization_code exchanged");
            token_body(&sim, &g)
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(gid) = sim.refresh_index.get(&rt).cloned() else {
                count_err(&mut sim, "invalid_grant");
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_grant");
            };
            let now = sim.now();
            let Some(g) = sim.grants.get_mut(&gid) else {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_grant");
            };
            if g.revoked || g.client_id != client_id {
                count_err(&mut sim, "invalid_grant");
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_grant");
            }
            if g.refresh_token != rt {
                // A spent refresh token came back: treat the grant as stolen.
                g.revoked = true;
                g.revoked_reason = Some("refresh token reused".into());
                tracing::warn!(grant = %gid, "refresh token reuse: grant revoked");
                count_err(&mut sim, "invalid_grant");
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_grant");
            }
            g.refresh_token = random_token(48);
            g.access_token = random_token(48);
            g.access_expires_at = now + ACCESS_TTL;
            g.token_calls += 1;
            g.refresh_calls += 1;
            let g = g.clone();
            sim.refresh_index
                .insert(g.refresh_token.clone(), gid.clone());
            sim.access_index
                .insert(g.access_token.clone(), (gid, g.access_expires_at));
            token_body(&sim, &g)
        }
        _ => {
            count_err(&mut sim, "unsupported_grant_type");
            oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported grant type",
                "unsupported_grant_type",
            )
        }
    }
}

/// `POST /oauth/revoke`: form `token=<access or refresh token>`.
pub async fn revoke(State(s): State<SimState>, headers: HeaderMap, body: String) -> Response {
    let mut sim = lock(&s);
    let Some(client_id) = basic_client(&headers, &sim) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "Invalid client_id or client_secret",
            "invalid_client",
        );
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let tok = form.get("token").cloned().unwrap_or_default();
    let gid = sim
        .access_index
        .get(&tok)
        .map(|(g, _)| g)
        .or_else(|| sim.refresh_index.get(&tok))
        .cloned();
    match gid.and_then(|g| sim.grants.get_mut(&g)) {
        Some(g) if g.client_id == client_id => {
            g.revoked = true;
            g.revoked_reason = Some("revoked by the app".into());
            axum::Json(json!({"status": "success"})).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_request"),
    }
}

/// Resolves a Bearer token to its live grant, or the API's 401.
pub fn bearer_grant(
    sim: &crate::Sim,
    headers: &HeaderMap,
) -> Result<crate::state::Grant, Response> {
    let tok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let found = sim
        .access_index
        .get(tok)
        .and_then(|(g, exp)| Some((sim.grants.get(g)?, *exp)))
        .filter(|(g, _)| !g.revoked);
    match found {
        None => Err(api_error(
            StatusCode::UNAUTHORIZED,
            124,
            "Invalid access token.",
        )),
        Some((_, exp)) if sim.now() >= exp => Err(api_error(
            StatusCode::UNAUTHORIZED,
            124,
            "Access token is expired.",
        )),
        Some((g, _)) => Ok(g.clone()),
    }
}

/// `GET /v2/users/me`.
pub async fn users_me(State(s): State<SimState>, headers: HeaderMap) -> Response {
    let mut sim = lock(&s);
    *sim.counters
        .api_calls
        .entry("GET /v2/users/me".into())
        .or_default() += 1;
    let g = match bearer_grant(&sim, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    const NEED: &[&str] = &[
        "user:read:admin",
        "user:read",
        "user:read:user:admin",
        "user:read:user",
        "user_info:read",
    ];
    if !g.scopes.iter().any(|s| NEED.contains(&s.as_str())) {
        return api_error(
            StatusCode::BAD_REQUEST,
            4711,
            "Invalid access token, does not contain scopes:[user:read:user:admin]",
        );
    }
    let Some(acct) = sim.accounts.get(&g.account_id) else {
        return api_error(StatusCode::NOT_FOUND, 1001, "User does not exist.");
    };
    let mut r = axum::Json(json!({
        "id": acct.owner.id,
        "account_id": acct.account_id,
        "account_number": acct.account_number,
        "email": acct.owner.email,
        "first_name": acct.owner.first_name,
        "last_name": acct.owner.last_name,
        "display_name": format!("{} {}", acct.owner.first_name, acct.owner.last_name),
        "type": 2,
        "role_name": "Owner",
        "status": "active",
        "timezone": "America/New_York",
        "cluster": "us06",
    }))
    .into_response();
    r.headers_mut().insert("x-zm-trackingid", tracking_id());
    r
}
