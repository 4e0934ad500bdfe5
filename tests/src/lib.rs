//! The end-to-end harness: each test gets its own table and app secret on the
//! DynamoDB Local / moto servers that `./test` started, and its own zoom-sim
//! and local-gateway processes on free loopback ports. Dropping the [`Stack`]
//! kills the processes it started.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SCOPES: &[&str] = &[
    "phone:read:admin",
    "phone:write:admin",
    "phone_peering:read:admin",
    "phone_peering:write:admin",
    "user:read:user:admin",
];

/// The servers `./test` starts; without them the tests cannot run.
pub fn require_local_aws() {
    for v in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ] {
        assert!(
            std::env::var(v).is_ok_and(|s| s.starts_with("http://127.0.0.1:")),
            "{v} must point at a local server on 127.0.0.1: run the tests with ./test"
        );
    }
}

pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("E2E_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/debug/deps/<test exe> → target/debug; target/debug/<bin> → target/debug
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        dir
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

type Log = Arc<Mutex<Vec<u8>>>;

/// A child process whose stdout and stderr are captured in memory.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    pub log: Log,
}

impl Proc {
    /// Starts `bin` and waits for a stdout line containing `ready`; returns the line too.
    async fn spawn(
        name: &'static str,
        bin: &str,
        args: &[&str],
        env: &[(String, String)],
        ready: &str,
    ) -> anyhow::Result<(Self, String)> {
        let path = bin_dir().join(bin);
        if !path.exists() {
            bail!(
                "{} is missing: build it first (cargo build --workspace --bins; ./test does)",
                path.display()
            );
        }
        let mut cmd = Command::new(&path);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("spawn {bin}"))?;
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        for (stream, tx) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Some(tx),
            ),
            (Box::new(stderr), None),
        ] {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(tx) = &tx {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    l.extend_from_slice(line.as_bytes());
                    l.push(b'\n');
                }
            });
        }
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = rx.recv().await {
                if line.contains(ready) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(line) = line else {
            let out = String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner()))
                .into_owned();
            bail!("{name} did not start:\n{out}");
        };
        Ok((Self { name, child, log }, line))
    }

    /// SIGTERM, then wait for the process to finish writing.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        // Let the reader tasks drain the pipes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub client_secret: String,
    pub rust_log: String,
    /// More environment for the gateway (e.g. `HTTP_TIMEOUT_MS`).
    pub gateway_env: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            client_secret: unique("client-secret"),
            rust_log: "info".into(),
            gateway_env: vec![],
        }
    }
}

pub struct Stack {
    pub gateway: String,
    gateway_env: Vec<(String, String)>,
    pub queue_url: String,
    pub dlq_url: String,
    pub sim: String,
    pub table: String,
    pub secret_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// Follows no redirects, like a test that wants to see each hop.
    pub http: reqwest::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub procs: Vec<Proc>,
}

pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

impl Stack {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(opts: StackOptions) -> anyhow::Result<Self> {
        require_local_aws();
        let aws = aws().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let sm = aws_sdk_secretsmanager::Client::new(&aws);
        let template = local_gateway::template::Template::embedded()?;
        let table = unique("t");
        let secret_id = unique("s");
        let client_id = unique("client");
        local_gateway::provision::create_table(&dynamo, &template, &table).await?;
        let secret_json = local_gateway::provision::app_secret_json(
            &client_id,
            &opts.client_secret,
            "webhook-secret",
        );
        local_gateway::provision::create_secret(&sm, &secret_id, &secret_json).await?;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let (queue_url, dlq_url) =
            local_gateway::provision::create_queues(&sqs, &unique("q"), 3).await?;

        let rust_log = ("RUST_LOG".to_string(), opts.rust_log.clone());
        let (sim_proc, line) = Proc::spawn(
            "zoom-sim",
            "zoom-sim",
            &["--port", "0"],
            std::slice::from_ref(&rust_log),
            "listening on",
        )
        .await?;
        let sim = line
            .rsplit(' ')
            .next()
            .context("zoom-sim address")?
            .to_owned();

        let port = free_port();
        let gateway = format!("http://127.0.0.1:{port}");
        let redirect_uri = format!("{gateway}/zoom/oauth/callback");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        http.post(format!("{sim}/_sim/apps"))
            .json(&json!({"client_id": client_id, "client_secret": opts.client_secret,
                          "name": "Carrier Zoom Phone connector", "redirect_uris": [redirect_uri], "scopes": SCOPES}))
            .send()
            .await?
            .error_for_status()?;
        let env: Vec<(String, String)> = [
            ("PORT", port.to_string()),
            ("TABLE_NAME", table.clone()),
            ("APP_SECRET_ID", secret_id.clone()),
            ("ZOOM_OAUTH_BASE_URL", sim.clone()),
            ("ZOOM_API_BASE_URL", format!("{sim}/v2")),
            ("ZOOM_REDIRECT_URI", redirect_uri.clone()),
            (
                "PORTAL_INTEGRATION_URL",
                format!("{gateway}/settings/integration"),
            ),
            ("PORTAL_ALLOWED_ORIGINS", gateway.clone()),
            ("NUMBER_QUEUE_URL", queue_url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain([rust_log])
        .chain(opts.gateway_env.iter().cloned())
        .collect();
        let env: Vec<(String, String)> = env
            .into_iter()
            .chain([("LOCAL_SCHEDULES".to_string(), "off".to_string())])
            .collect();
        let (gw_proc, _) = Proc::spawn(
            "local-gateway",
            "local-gateway",
            &["serve"],
            &env,
            "listening on",
        )
        .await?;
        let gateway_env = env;
        Ok(Self {
            gateway,
            gateway_env,
            queue_url,
            dlq_url,
            sim,
            table,
            secret_id,
            client_id,
            client_secret: opts.client_secret,
            redirect_uri,
            http,
            dynamo,
            procs: vec![sim_proc, gw_proc],
        })
    }

    /// Kills the gateway (SIGKILL, mid-work if it is working) and starts a new
    /// one on the same port: a crashed worker whose messages SQS redelivers.
    pub async fn crash_and_restart_gateway(&mut self) -> anyhow::Result<()> {
        if let Some(i) = self.procs.iter().position(|p| p.name == "local-gateway") {
            let mut p = self.procs.remove(i);
            let _ = p.child.kill().await;
        }
        let (gw, _) = Proc::spawn(
            "local-gateway",
            "local-gateway",
            &["serve"],
            &self.gateway_env,
            "listening on",
        )
        .await?;
        self.procs.push(gw);
        Ok(())
    }

    /// Stops every process (gracefully) and returns each one's output.
    pub async fn stop(&mut self) -> HashMap<&'static str, String> {
        let mut out = HashMap::new();
        for p in &mut self.procs {
            p.stop().await;
            out.insert(p.name, p.output());
        }
        out
    }

    /// A new Zoom account in zoom-sim; returns its id.
    pub async fn zoom_account(&self) -> anyhow::Result<String> {
        let v: Value = self
            .http
            .post(format!("{}/_sim/accounts", self.sim))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["account_id"].as_str().context("account_id")?.to_owned())
    }

    pub async fn token(&self, account: &str) -> anyhow::Result<String> {
        self.token_with(&[("account_id", account)]).await
    }

    /// A token from the gateway's dev endpoint (`aud`, `expires_in`, `scope`, `sub` overridable).
    pub async fn token_with(&self, q: &[(&str, &str)]) -> anyhow::Result<String> {
        let v: Value = self
            .http
            .get(format!("{}/__dev/token", self.gateway))
            .query(q)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["token"].as_str().context("token")?.to_owned())
    }

    pub async fn status(&self, account: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}/v1/accounts/{account}/zoom", self.gateway))
            .bearer_auth(token)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn install_raw(
        &self,
        account: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut r = self
            .http
            .post(format!(
                "{}/v1/accounts/{account}/zoom/install",
                self.gateway
            ))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Ok(r.send().await?)
    }

    /// Starts an install; returns the authorize URL.
    pub async fn install(&self, account: &str, token: &str) -> anyhow::Result<url::Url> {
        let r = self.install_raw(account, token, None).await?;
        if r.status() != 200 {
            bail!(
                "install: HTTP {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let v: Value = r.json().await?;
        Ok(url::Url::parse(
            v["authorize_url"].as_str().context("authorize_url")?,
        )?)
    }

    /// What the customer does on Zoom's consent page: loads it, then Allow or
    /// Deny as `zoom_account`. Returns where Zoom redirects the browser.
    pub async fn consent(
        &self,
        authorize_url: &url::Url,
        zoom_account: &str,
        allow: bool,
    ) -> anyhow::Result<url::Url> {
        let page = self.http.get(authorize_url.clone()).send().await?;
        if page.status() != 200 {
            bail!("consent page: HTTP {}", page.status());
        }
        let html = page.text().await?;
        if !html.contains("Allow") {
            bail!("consent page has no Allow button");
        }
        let mut form: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
        form.push(("account_id".into(), zoom_account.into()));
        form.push((
            "decision".into(),
            if allow { "allow" } else { "deny" }.into(),
        ));
        let r = self
            .http
            .post(format!("{}/oauth/authorize/decision", self.sim))
            .form(&form)
            .send()
            .await?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("consent did not redirect")?;
        Ok(url::Url::parse(loc)?)
    }

    /// The browser arriving at our callback.
    pub async fn callback(&self, url: &url::Url) -> anyhow::Result<reqwest::Response> {
        Ok(self.http.get(url.clone()).send().await?)
    }

    /// Install → Allow → callback; returns (authorization code, callback response Location).
    pub async fn verify(
        &self,
        account: &str,
        zoom_account: &str,
    ) -> anyhow::Result<(String, String)> {
        let token = self.token(account).await?;
        let authz = self.install(account, &token).await?;
        let cb = self.consent(&authz, zoom_account, true).await?;
        let code = cb
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("code")?;
        let r = self.callback(&cb).await?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((code, loc))
    }

    /// Injects a fault into zoom-sim (see its control API).
    pub async fn fault(&self, fault: Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sim/faults", self.sim))
            .json(&fault)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn sim_get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.sim))
            .send()
            .await?
            .json()
            .await?)
    }

    /// zoom-sim's count of token-endpoint calls for one grant type.
    pub async fn token_calls(&self, grant_type: &str) -> anyhow::Result<u64> {
        Ok(
            self.sim_get("/_sim/counters").await?["token_calls"][grant_type]
                .as_u64()
                .unwrap_or(0),
        )
    }

    /// Every item in this test's table (a Scan: tests only).
    pub async fn all_items(
        &self,
    ) -> anyhow::Result<Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>> {
        let mut out = vec![];
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// An [`shared::AppContext`] of its own (own SDK clients, HTTP client and
    /// refresh coordinator: a separate "instance") against this stack.
    pub async fn context(
        &self,
        clock: shared::clock::ManualClock,
    ) -> anyhow::Result<shared::AppContext> {
        Ok(shared::AppContext::build(self.config()?, std::sync::Arc::new(clock)).await?)
    }

    /// As [`Stack::context`], with extra configuration (e.g. `HTTP_TIMEOUT_MS`).
    pub async fn context_with(
        &self,
        clock: shared::clock::ManualClock,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<shared::AppContext> {
        let base = self.config_map();
        let cfg = shared::config::Config::from_lookup(|k| {
            extra
                .iter()
                .find(|(ek, _)| *ek == k)
                .map(|(_, v)| v.to_string())
                .or_else(|| base.get(k).cloned())
        })?;
        Ok(shared::AppContext::build(cfg, std::sync::Arc::new(clock)).await?)
    }

    pub async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.sim))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await.unwrap_or(Value::Null))
    }

    /// The connection item as stored (raw).
    pub async fn connection_item(
        &self,
        account: &str,
    ) -> anyhow::Result<Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>> {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("PK", A::S(format!("ACCOUNT#{account}")))
            .key("SK", A::S("CONNECTION".into()))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item)
    }

    /// The functions' environment for this stack (for starting a bootstrap).
    pub fn config_env(&self) -> Vec<(String, String)> {
        self.config_map()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    fn config_map(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("TABLE_NAME", self.table.clone()),
            ("APP_SECRET_ID", self.secret_id.clone()),
            ("ZOOM_OAUTH_BASE_URL", self.sim.clone()),
            ("ZOOM_API_BASE_URL", format!("{}/v2", self.sim)),
            ("ZOOM_REDIRECT_URI", self.redirect_uri.clone()),
            (
                "PORTAL_INTEGRATION_URL",
                format!("{}/settings/integration", self.gateway),
            ),
            ("NUMBER_QUEUE_URL", self.queue_url.clone()),
        ])
    }

    /// A carrier operator's token.
    pub async fn carrier_token(&self) -> anyhow::Result<String> {
        self.token_with(&[
            ("account_id", "carrier"),
            ("sub", "ops-1"),
            ("scope", "zoom.carrier_admin"),
        ])
        .await
    }

    /// Calls the API with a token; returns status and JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.gateway))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// Loads inventory numbers as the carrier.
    pub async fn import_inventory(&self, numbers: &[String]) -> anyhow::Result<Value> {
        let csv = format!("number\n{}\n", numbers.join("\n"));
        let t = self.carrier_token().await?;
        let r = self
            .http
            .post(format!("{}/v1/inventory/imports", self.gateway))
            .bearer_auth(t)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "import: {}", r.status());
        Ok(r.json().await?)
    }

    /// Polls an operation until it is no longer queued or running.
    pub async fn wait_operation(
        &self,
        account: &str,
        token: &str,
        op: &str,
        limit: std::time::Duration,
    ) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let (st, v) = self
                .api(
                    reqwest::Method::GET,
                    &format!("/v1/accounts/{account}/zoom/operations/{op}?limit=1"),
                    token,
                    None,
                )
                .await?;
            anyhow::ensure!(st == 200, "operation {op}: HTTP {st} {v}");
            if !matches!(v["state"].as_str(), Some("queued" | "running")) {
                return Ok(v);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "operation {op} did not finish: {v}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// zoom-sim's view of a Zoom account's numbers.
    pub async fn sim_numbers(&self, zoom: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .sim_get(&format!("/_sim/accounts/{zoom}/numbers"))
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Configuration for building an [`shared::AppContext`] in the test
    /// process against this stack (to drive handlers with a manual clock).
    pub fn config(&self) -> anyhow::Result<shared::config::Config> {
        let m = self.config_map();
        Ok(shared::config::Config::from_lookup(|k| m.get(k).cloned())?)
    }
}

/// A Lambda HTTP request as API Gateway would deliver it, with the JWT
/// authorizer's claims for `account` (for calling handlers in-process).
pub fn lambda_request(
    method: &str,
    route: &str,
    path: &str,
    query: Option<&str>,
    params: &[(&str, &str)],
    claims: Option<(&str, &str)>,
    body: &[u8],
) -> lambda_http::Request {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let authorizer = match claims {
        Some((account, sub)) => {
            json!({"jwt": {"claims": {"portal_account_id": account, "sub": sub, "scope": "zoom.integration"}, "scopes": ["zoom.integration"]}})
        }
        None => Value::Null,
    };
    let mut headers = axum_headers();
    if !body.is_empty() {
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
    }
    let ev = local_gateway::gateway::api_gateway_event(
        method, route, path, query, &headers, &params, body, authorizer,
    );
    lambda_http::request::from_str(&ev.to_string()).unwrap_or_else(|e| panic!("bad event: {e}"))
}

fn axum_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("host", http::HeaderValue::from_static("127.0.0.1"));
    h
}
