//! zoom-sim keeps Zoom's published contract (reference §1, §7.1): checked over
//! HTTP against a simulator on a free loopback port.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zoom_sim::SimHandle;

const REDIRECT: &str = "https://app.example.com/zoom/oauth/callback";

struct T {
    sim: SimHandle,
    http: reqwest::Client,
    account: String,
}

impl T {
    async fn new(scopes: &[&str]) -> anyhow::Result<Self> {
        let sim = SimHandle::start().await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        http.post(format!("{}/_sim/apps", sim.base_url))
            .json(&json!({"client_id": "cid", "client_secret": "csecret", "redirect_uris": [REDIRECT], "scopes": scopes}))
            .send()
            .await?
            .error_for_status()?;
        let a: Value = http
            .post(format!("{}/_sim/accounts", sim.base_url))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        Ok(Self {
            sim,
            http,
            account: a["account_id"].as_str().unwrap_or_default().to_owned(),
        })
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.sim.base_url)
    }

    /// Consent as the account; returns the code.
    async fn code(&self, challenge: Option<&str>) -> anyhow::Result<String> {
        let mut form = vec![
            ("client_id", "cid".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("response_type", "code".to_owned()),
            ("state", "st".to_owned()),
            ("account_id", self.account.clone()),
            ("decision", "allow".to_owned()),
        ];
        if let Some(c) = challenge {
            form.push(("code_challenge", c.to_owned()));
            form.push(("code_challenge_method", "S256".to_owned()));
        }
        let r = self
            .http
            .post(self.url("/oauth/authorize/decision"))
            .form(&form)
            .send()
            .await?;
        assert_eq!(r.status(), 302, "Allow redirects as Zoom does");
        let loc = url::Url::parse(r.headers()["location"].to_str()?)?;
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st");
        Ok(q["code"].clone())
    }

    async fn token(
        &self,
        form: &[(&str, &str)],
        auth: Option<(&str, &str)>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.http.post(self.url("/oauth/token")).form(form);
        if let Some((u, p)) = auth {
            r = r.basic_auth(u, Some(p));
        }
        let r = r.send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }

    async fn me(&self, access: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(self.url("/v2/users/me"))
            .bearer_auth(access)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await?))
    }
}

const AUTH: Option<(&str, &str)> = Some(("cid", "csecret"));

#[tokio::test]
async fn authorize_validates_client_redirect_and_response_type() -> anyhow::Result<()> {
    let t = T::new(&["user:read:user:admin"]).await?;
    let ok = format!(
        "/oauth/authorize?response_type=code&client_id=cid&redirect_uri={}",
        urlenc(REDIRECT)
    );
    let page = t.http.get(t.url(&ok)).send().await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(
        html.contains("user:read:user:admin")
            && html.contains("id=\"allow\"")
            && html.contains("id=\"deny\"")
    );
    for bad in [
        ok.replace("client_id=cid", "client_id=nope"),
        ok.replace("app.example.com", "evil.example.com"),
        format!("{ok}/"),
        ok.replace("response_type=code", "response_type=token"),
        format!("{ok}&code_challenge=short&code_challenge_method=S256"),
    ] {
        assert_eq!(t.http.get(t.url(&bad)).send().await?.status(), 400, "{bad}");
    }
    // Deny → access_denied with the state.
    let r = t
        .http
        .post(t.url("/oauth/authorize/decision"))
        .form(&[
            ("client_id", "cid"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("state", "s1"),
            ("decision", "deny"),
        ])
        .send()
        .await?;
    assert_eq!(
        r.headers()["location"],
        format!("{REDIRECT}?error=access_denied&state=s1").as_str()
    );
    Ok(())
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn code_exchange_contract() -> anyhow::Result<()> {
    let t = T::new(&["phone:read:admin", "user:read:user:admin"]).await?;
    let code = t.code(None).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    // Basic auth is required and checked.
    let (st, body) = t.token(&form, None).await?;
    assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")));
    let (st, _) = t.token(&form, Some(("cid", "wrong"))).await?;
    assert_eq!(st, 401);
    // The right call (the failed ones above did not spend the code).
    let (st, tok) = t.token(&form, AUTH).await?;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["token_type"], "bearer");
    assert_eq!(tok["expires_in"], 3599);
    assert_eq!(tok["scope"], "phone:read:admin user:read:user:admin");
    assert!(tok["access_token"].as_str().is_some_and(|s| s.len() > 20));
    assert!(tok["refresh_token"].as_str().is_some_and(|s| s.len() > 20));
    assert!(tok["api_url"].is_string());
    // Single use, with Zoom's observed body.
    let (st, body) = t.token(&form, AUTH).await?;
    assert_eq!(st, 400);
    assert_eq!(
        body,
        json!({"reason": format!("Invalid authorization code {code}"), "error": "invalid_request"})
    );
    // Bound to redirect_uri.
    let code2 = t.code(None).await?;
    let (st, body) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code2),
                ("redirect_uri", "https://other/"),
            ],
            AUTH,
        )
        .await?;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_request")));
    // Five minutes, then expired.
    let code3 = t.code(None).await?;
    t.http
        .post(t.url("/_sim/clock"))
        .json(&json!({"advance_secs": 300}))
        .send()
        .await?;
    let (st, body) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code3),
                ("redirect_uri", REDIRECT),
            ],
            AUTH,
        )
        .await?;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    // Unknown grant types.
    let (st, body) = t.token(&[("grant_type", "password")], AUTH).await?;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"reason": "unsupported grant type", "error": "unsupported_grant_type"})
        )
    );
    Ok(())
}

#[tokio::test]
async fn pkce_is_enforced() -> anyhow::Result<()> {
    let t = T::new(&["user:read:user:admin"]).await?;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let code = t.code(Some(&challenge)).await?;
    let (st, body) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                (
                    "code_verifier",
                    "wrong-verifier-wrong-verifier-wrong-verifier",
                ),
            ],
            AUTH,
        )
        .await?;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    let code = t.code(Some(&challenge)).await?;
    let (st, _) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            AUTH,
        )
        .await?;
    assert_eq!(st, 400, "a missing verifier fails too");
    let code = t.code(Some(&challenge)).await?;
    let (st, _) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
            AUTH,
        )
        .await?;
    assert_eq!(st, 200);
    Ok(())
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_grant() -> anyhow::Result<()> {
    let t = T::new(&["user:read:user:admin"]).await?;
    let code = t.code(None).await?;
    let (_, first) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            AUTH,
        )
        .await?;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (st, second) = t
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
            AUTH,
        )
        .await?;
    assert_eq!(st, 200);
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "a new refresh token every time");
    let a2 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t.me(&a2).await?.0, 200);
    let a1 = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        t.me(&a1).await?.0,
        200,
        "an older access token lives until its own expiry"
    );

    // Replaying the spent r1: Zoom's error, and the whole grant is gone.
    let (st, body) = t
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
            AUTH,
        )
        .await?;
    assert_eq!(
        (st, body),
        (
            400,
            json!({"reason": "Invalid Token!", "error": "invalid_grant"})
        )
    );
    let (st, _) = t
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
            AUTH,
        )
        .await?;
    assert_eq!(st, 400, "the newest refresh token died with the grant");
    let (st, body) = t.me(&a2).await?;
    assert_eq!(
        (st, body),
        (
            401,
            json!({"code": 124, "message": "Invalid access token."})
        )
    );
    assert_eq!(t.me(&a1).await?.0, 401);
    let counters: Value = t
        .http
        .get(t.url("/_sim/counters"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(counters["token_calls"]["refresh_token"], 3);
    assert_eq!(counters["token_errors"]["invalid_grant"], 2);
    Ok(())
}

#[tokio::test]
async fn users_me_checks_bearer_expiry_and_scope() -> anyhow::Result<()> {
    let t = T::new(&["phone:read:admin"]).await?;
    let (st, body) = t.me("nope").await?;
    assert_eq!(
        (st, body),
        (
            401,
            json!({"code": 124, "message": "Invalid access token."})
        )
    );
    let code = t.code(None).await?;
    let (_, tok) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            AUTH,
        )
        .await?;
    let access = tok["access_token"].as_str().unwrap();
    let (st, body) = t.me(access).await?;
    assert_eq!(st, 400);
    assert_eq!(body["code"], 4711);

    let t = T::new(&["user:read:user:admin"]).await?;
    let code = t.code(None).await?;
    let (_, tok) = t
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            AUTH,
        )
        .await?;
    let access = tok["access_token"].as_str().unwrap();
    let r = t
        .http
        .get(t.url("/v2/users/me"))
        .bearer_auth(access)
        .send()
        .await?;
    assert!(r.headers().contains_key("x-zm-trackingid"));
    let me: Value = r.json().await?;
    assert_eq!(me["account_id"], t.account.as_str());
    for f in [
        "id",
        "email",
        "first_name",
        "last_name",
        "type",
        "role_name",
        "status",
        "account_number",
    ] {
        assert!(!me[f].is_null(), "users/me has {f}");
    }
    t.http
        .post(t.url("/_sim/clock"))
        .json(&json!({"advance_secs": 3599}))
        .send()
        .await?;
    let (st, body) = t.me(access).await?;
    assert_eq!(
        (st, body["code"].as_i64()),
        (401, Some(124)),
        "expired after an hour"
    );
    Ok(())
}

#[tokio::test]
async fn revoke_and_reauthorization_end_older_tokens() -> anyhow::Result<()> {
    let t = T::new(&["user:read:user:admin"]).await?;
    let exchange = |code: String| {
        let t = &t;
        async move {
            t.token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                ],
                AUTH,
            )
            .await
        }
    };
    let (_, g1) = exchange(t.code(None).await?).await?;
    let (_, g2) = exchange(t.code(None).await?).await?;
    assert_eq!(
        t.me(g1["access_token"].as_str().unwrap()).await?.0,
        401,
        "a newer authorization supersedes"
    );
    let a2 = g2["access_token"].as_str().unwrap();
    assert_eq!(t.me(a2).await?.0, 200);
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .basic_auth("cid", Some("csecret"))
        .form(&[("token", a2)])
        .send()
        .await?;
    assert_eq!(r.json::<Value>().await?, json!({"status": "success"}));
    assert_eq!(t.me(a2).await?.0, 401);
    Ok(())
}

#[tokio::test]
async fn faults_replace_or_delay_answers_a_set_number_of_times() -> anyhow::Result<()> {
    let t = T::new(&["user:read:user:admin"]).await?;
    t.http
        .post(t.url("/_sim/faults"))
        .json(&json!({"path": "/v2/users/me", "status": 429, "times": 2, "headers": {"retry-after": "1"},
                      "body": {"code": 429, "message": "You have reached the maximum per-second rate limit for this API."}}))
        .send()
        .await?
        .error_for_status()?;
    for _ in 0..2 {
        let r = t.http.get(t.url("/v2/users/me")).send().await?;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
    }
    assert_eq!(
        t.me("x").await?.0,
        401,
        "the fault is used up; the real answer is back"
    );
    Ok(())
}
