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

async fn phone_token(t: &T) -> anyhow::Result<String> {
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
    Ok(tok["access_token"].as_str().unwrap_or_default().to_owned())
}

const PHONE: &[&str] = &[
    "phone:read:admin",
    "phone:write:admin",
    "phone_peering:read:admin",
    "phone_peering:write:admin",
];

#[tokio::test]
async fn peering_numbers_contract() -> anyhow::Result<()> {
    let t = T::new(PHONE).await?;
    let a = phone_token(&t).await?;
    let url = t.url("/v2/number_management/peering_numbers");
    let item =
        |n: &str| json!({"phone_number": n, "sip_trunk_name": "carrier-trunk-1", "status": true});
    // 201, no body.
    let r = t
        .http
        .post(&url)
        .bearer_auth(&a)
        .json(&json!({"phone_numbers": [item("+12097654882")]}))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    // Partial failure: code 1000 with per-number reasons; the good ones are added.
    let body = json!({"phone_numbers": [item("+12097654883"), item("+12097654882"), {"phone_number": "+12098888111", "sip_trunk_name": "nope", "status": true}, item("12")]});
    let r = t.http.post(&url).bearer_auth(&a).json(&body).send().await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert_eq!(
        (v["code"].as_i64(), v["message"].as_str()),
        (Some(1000), Some("Some data failed"))
    );
    let reasons: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "Phone number already exists",
            "Invalid Sip Trunk",
            "Invalid number"
        ]
    );
    // At most 200 a call; never empty.
    let many: Vec<Value> = (0..201).map(|i| item(&format!("+1209700{i:04}"))).collect();
    let r = t
        .http
        .post(&url)
        .bearer_auth(&a)
        .json(&json!({"phone_numbers": many}))
        .send()
        .await?;
    assert_eq!(r.json::<Value>().await?["code"], 1003);
    let r = t
        .http
        .post(&url)
        .bearer_auth(&a)
        .json(&json!({"phone_numbers": []}))
        .send()
        .await?;
    assert_eq!(r.json::<Value>().await?["code"], 1002);
    // PATCH 204; GET lists booleans; DELETE 200.
    let r = t
        .http
        .patch(&url)
        .bearer_auth(&a)
        .json(&json!({"phone_numbers": [{"phone_number": "+12097654882", "status": false}]}))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    let v: Value = t
        .http
        .get(&url)
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(v["total_records"], 2);
    assert_eq!(
        (
            v["numbers"][0]["status"].as_bool(),
            v["numbers"][0]["assigned"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let r = t
        .http
        .delete(format!("{url}?phone_numbers=%2B12097654882,%2B12097654883"))
        .bearer_auth(&a)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let v: Value = t
        .http
        .get(&url)
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(v["total_records"], 0);
    Ok(())
}

#[tokio::test]
async fn phone_lists_page_with_expiring_tokens_and_rate_limits_answer_429() -> anyhow::Result<()> {
    let t = T::new(PHONE).await?;
    let a = phone_token(&t).await?;
    let peer = t.url("/v2/number_management/peering_numbers");
    let items: Vec<Value> = (0..150).map(|i| json!({"phone_number": format!("+1303444{i:04}"), "sip_trunk_name": "carrier-trunk-1", "status": true})).collect();
    assert_eq!(
        t.http
            .post(&peer)
            .bearer_auth(&a)
            .json(&json!({"phone_numbers": items}))
            .send()
            .await?
            .status(),
        201
    );
    // page_size is capped at 100 for /phone/numbers.
    let p1: Value = t
        .http
        .get(t.url("/v2/phone/numbers?page_size=300"))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (
            p1["phone_numbers"].as_array().unwrap().len(),
            p1["total_records"].as_u64()
        ),
        (100, Some(150))
    );
    let token = p1["next_page_token"].as_str().unwrap().to_owned();
    let p2: Value = t
        .http
        .get(t.url(&format!(
            "/v2/phone/numbers?page_size=100&next_page_token={token}"
        )))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (
            p2["phone_numbers"].as_array().unwrap().len(),
            p2["next_page_token"].as_str()
        ),
        (50, Some(""))
    );
    // Page tokens expire after 15 minutes.
    t.http
        .post(t.url("/_sim/clock"))
        .json(&json!({"advance_secs": 901}))
        .send()
        .await?;
    let a2 = phone_token(&t).await?;
    let r = t
        .http
        .get(t.url(&format!("/v2/phone/numbers?next_page_token={token}")))
        .bearer_auth(&a2)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await?["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // Medium label, Business+: 20 a second, then 429 with Zoom's headers.
    t.http
        .post(t.url(&format!("/_sim/accounts/{}/rate_plan", t.account)))
        .json(&json!({"plan": "business"}))
        .send()
        .await?;
    let mut limited = None;
    for _ in 0..60 {
        let r = t
            .http
            .get(t.url("/v2/phone/users"))
            .bearer_auth(&a2)
            .send()
            .await?;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the 21st call in a second is limited");
    assert_eq!(r.headers()["x-ratelimit-category"], "Medium");
    assert_eq!(r.headers()["x-ratelimit-type"], "QPS");
    assert_eq!(r.headers()["x-ratelimit-limit"], "20");
    assert_eq!(r.json::<Value>().await?["code"], 429);
    Ok(())
}

#[tokio::test]
async fn assignment_status_codes_follow_the_live_api() -> anyhow::Result<()> {
    let t = T::new(PHONE).await?;
    let a = phone_token(&t).await?;
    let items: Vec<Value> = (0..3).map(|i| json!({"phone_number": format!("+1303555{i:04}"), "sip_trunk_name": "carrier-trunk-1", "status": true})).collect();
    t.http
        .post(t.url("/v2/number_management/peering_numbers"))
        .bearer_auth(&a)
        .json(&json!({"phone_numbers": items}))
        .send()
        .await?;
    let users: Value = t
        .http
        .get(t.url("/v2/phone/users"))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    let cqs: Value = t
        .http
        .get(t.url("/v2/phone/call_queues"))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    let ars: Value = t
        .http
        .get(t.url("/v2/phone/auto_receptionists"))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    let (u, c, r) = (
        users["users"][0]["id"].as_str().unwrap(),
        cqs["call_queues"][0]["id"].as_str().unwrap(),
        ars["auto_receptionists"][0]["id"].as_str().unwrap(),
    );
    let assign = |kind: &str, id: &str, n: &str| {
        t.http
            .post(t.url(&format!("/v2/phone/{kind}/{id}/phone_numbers")))
            .bearer_auth(&a)
            .json(&json!({"phone_numbers": [{"number": n}]}))
            .send()
    };
    assert_eq!(assign("users", u, "+13035550000").await?.status(), 201);
    assert_eq!(
        assign("call_queues", c, "+13035550001").await?.status(),
        201
    );
    assert_eq!(
        assign("auto_receptionists", r, "+13035550002")
            .await?
            .status(),
        204
    );
    assert_eq!(
        assign("users", u, "+13035550001").await?.status(),
        400,
        "already assigned"
    );
    assert_eq!(
        assign("users", "nouser", "+13035550000")
            .await?
            .json::<Value>()
            .await?["code"],
        1001
    );
    let listed: Value = t
        .http
        .get(t.url("/v2/phone/numbers?type=assigned"))
        .bearer_auth(&a)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["total_records"], 3);
    let cq_num = listed["phone_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["assignee"]["type"] == "callQueue")
        .unwrap()
        .clone();
    // Call queues unassign by the number's id only.
    let by_number = t
        .http
        .delete(t.url(&format!(
            "/v2/phone/call_queues/{c}/phone_numbers/%2B13035550001"
        )))
        .bearer_auth(&a)
        .send()
        .await?;
    assert_eq!(by_number.status(), 404);
    let by_id = t
        .http
        .delete(t.url(&format!(
            "/v2/phone/call_queues/{c}/phone_numbers/{}",
            cq_num["id"].as_str().unwrap()
        )))
        .bearer_auth(&a)
        .send()
        .await?;
    assert_eq!(by_id.status(), 204);
    // An assigned number cannot be removed from Zoom.
    let r = t
        .http
        .delete(t.url("/v2/number_management/peering_numbers?phone_numbers=%2B13035550000"))
        .bearer_auth(&a)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    Ok(())
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_at_all() -> anyhow::Result<()> {
    let t = T::new(PHONE).await?;
    t.http
        .post(t.url("/_sim/faults"))
        .json(&json!({"path": "/v2/phone/users", "drop": true, "times": 1}))
        .send()
        .await?
        .error_for_status()?;
    let r = t.http.get(t.url("/v2/phone/users")).send().await;
    assert!(r.is_err(), "no HTTP answer: {:?}", r.map(|r| r.status()));
    assert_eq!(
        t.http.get(t.url("/v2/phone/users")).send().await?.status(),
        401,
        "the next call is answered"
    );
    Ok(())
}
