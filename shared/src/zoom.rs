//! Zoom's OAuth (through the `oauth2` crate) and REST API (reqwest), sharing
//! one HTTP client per process: rustls, no redirects followed, a timeout on
//! every call.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::Config;
use crate::ids::ZoomAccountId;
use crate::secrets::AppSecret;

#[derive(Debug, thiserror::Error)]
pub enum ZoomError {
    /// The token endpoint answered with an OAuth error (`invalid_grant`, ...).
    #[error("Zoom's token endpoint refused the request: {error}")]
    OAuth { error: String },
    #[error("Zoom API error: HTTP {status}, code {code:?}")]
    Api {
        status: u16,
        code: Option<i64>,
        message: Option<String>,
    },
    /// The request never left (connection refused, DNS, TLS): nothing happened at Zoom.
    #[error("could not connect to Zoom: {0}")]
    Unreachable(String),
    /// Sent, but no complete answer (timeout, reset): the outcome is unknown.
    #[error("no answer from Zoom: {0}")]
    Transport(String),
    #[error("unexpected answer from Zoom: {0}")]
    Unexpected(&'static str),
    #[error("bad Zoom URL configuration: {0}")]
    Config(String),
}

/// Lets `oauth2` send its requests with the process's reqwest client.
struct OAuthHttp<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = ZoomError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, ZoomError>> + Send + 'c>,
    >;
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send_oauth(self.0, request))
    }
}

fn send_error(e: reqwest::Error) -> ZoomError {
    if e.is_connect() {
        ZoomError::Unreachable(e.without_url().to_string())
    } else {
        ZoomError::Transport(e.without_url().to_string())
    }
}

async fn send_oauth(http: &reqwest::Client, req: HttpRequest) -> Result<HttpResponse, ZoomError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let resp = http
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(send_error)?;
    // Zoom answered, but not as OAuth: nothing was granted or rotated.
    if resp.status().is_server_error() || resp.status().as_u16() == 429 {
        return Err(ZoomError::Api {
            status: resp.status().as_u16(),
            code: None,
            message: None,
        });
    }
    let mut out = http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ZoomError::Transport(e.without_url().to_string()))?;
    out.body(bytes.to_vec())
        .map_err(|_| ZoomError::Unexpected("bad HTTP response"))
}

/// Builds the one HTTP client of the process.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ZoomError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("zoom-phone-connector/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ZoomError::Transport(e.without_url().to_string()))
}

/// Tokens from Zoom. `Debug` redacts them.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: Duration,
    pub scopes: Vec<String>,
}

/// The fields of `GET /users/me` this service uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ZoomMe {
    pub id: Option<String>,
    pub account_id: ZoomAccountId,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The process's HTTP client for Zoom, built on first use: a function that
/// never calls Zoom (e.g. `status`) does not pay for TLS set-up at cold start.
pub struct LazyHttp {
    timeout: Duration,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl LazyHttp {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            // Building with these settings cannot fail short of a broken TLS
            // backend; fall back to reqwest's defaults rather than panic.
            http_client(self.timeout).unwrap_or_default()
        })
    }
}

pub struct ZoomClient {
    http: LazyHttp,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    redirect_uri: RedirectUrl,
    api_base: Url,
}

/// A started authorization: the URL to send the browser to and what must be
/// kept to finish it.
pub struct Authorization {
    pub url: Url,
    pub state: SecretString,
    pub pkce_verifier: SecretString,
}

impl ZoomClient {
    pub fn new(http: LazyHttp, config: &Config) -> Result<Self, ZoomError> {
        let join = |p: &str| {
            config
                .zoom_oauth_base
                .join(p)
                .map_err(|e| ZoomError::Config(e.to_string()))
        };
        Ok(Self {
            http,
            auth_url: AuthUrl::from_url(join("/oauth/authorize")?),
            token_url: TokenUrl::from_url(join("/oauth/token")?),
            redirect_uri: RedirectUrl::from_url(config.redirect_uri.clone()),
            api_base: config.zoom_api_base.clone(),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        self.http.get()
    }

    fn oauth(&self, secret: &AppSecret) -> ConfiguredClient {
        BasicClient::new(ClientId::new(secret.zoom_client_id.clone()))
            .set_client_secret(ClientSecret::new(
                secret.zoom_client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(self.auth_url.clone())
            .set_token_uri(self.token_url.clone())
            .set_redirect_uri(self.redirect_uri.clone())
    }

    /// A new authorize URL with a 256-bit random state and a PKCE S256 pair.
    pub fn authorize(&self, secret: &AppSecret) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth(secret)
            .authorize_url(|| CsrfToken::new_random_len(32))
            .set_pkce_challenge(challenge)
            .url();
        Authorization {
            url,
            state: SecretString::from(state.into_secret()),
            pkce_verifier: SecretString::from(verifier.into_secret()),
        }
    }

    /// `authorization_code` grant: Basic auth, form body, `redirect_uri`, `code_verifier`.
    pub async fn exchange_code(
        &self,
        secret: &AppSecret,
        code: &SecretString,
        verifier: &SecretString,
    ) -> Result<TokenGrant, ZoomError> {
        let http = OAuthHttp(self.http.get());
        let res = self
            .oauth(secret)
            .exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
            .request_async(&http)
            .await;
        grant_from(res)
    }

    /// `refresh_token` grant. Zoom answers with a new pair; the spent refresh
    /// token stops working.
    pub async fn refresh(
        &self,
        secret: &AppSecret,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, ZoomError> {
        let http = OAuthHttp(self.http.get());
        let rt = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        let res = self
            .oauth(secret)
            .exchange_refresh_token(&rt)
            .request_async(&http)
            .await;
        grant_from(res)
    }
}

type TokenResult = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<ZoomError, oauth2::basic::BasicErrorResponse>,
>;

fn grant_from(res: TokenResult) -> Result<TokenGrant, ZoomError> {
    {
        match res {
            Ok(t) => Ok(TokenGrant {
                access_token: SecretString::from(t.access_token().secret().to_owned()),
                refresh_token: SecretString::from(
                    t.refresh_token()
                        .ok_or(ZoomError::Unexpected(
                            "token response without refresh_token",
                        ))?
                        .secret()
                        .to_owned(),
                ),
                expires_in: t.expires_in().unwrap_or(Duration::from_secs(3599)),
                scopes: t
                    .scopes()
                    .map(|s| s.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default(),
            }),
            Err(RequestTokenError::ServerResponse(e)) => Err(ZoomError::OAuth {
                error: match e.error() {
                    BasicErrorResponseType::Extension(s) => s.clone(),
                    other => other.as_ref().to_owned(),
                },
            }),
            Err(RequestTokenError::Request(e)) => Err(e),
            // The body is not quoted: it may hold a token.
            Err(RequestTokenError::Parse(_, _)) => {
                Err(ZoomError::Unexpected("token response could not be parsed"))
            }
            Err(RequestTokenError::Other(_)) => Err(ZoomError::Unexpected("token request failed")),
        }
    }
}

impl ZoomClient {
    /// `GET /users/me`: who authorized, and in which Zoom account.
    pub async fn users_me(&self, access_token: &SecretString) -> Result<ZoomMe, ZoomError> {
        let url = self
            .api_base
            .join("users/me")
            .map_err(|e| ZoomError::Config(e.to_string()))?;
        let resp = self
            .http()
            .get(url)
            .bearer_auth(access_token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(send_error)?;
        let status = resp.status();
        if let Some(t) = resp
            .headers()
            .get("x-zm-trackingid")
            .and_then(|v| v.to_str().ok())
        {
            tracing::debug!(
                zoom_tracking_id = t,
                status = status.as_u16(),
                "GET users/me"
            );
        }
        let bytes = resp.bytes().await.map_err(send_error)?;
        if !status.is_success() {
            let body: Option<ApiErrorBody> = serde_json::from_slice(&bytes).ok();
            return Err(ZoomError::Api {
                status: status.as_u16(),
                code: body.as_ref().and_then(|b| b.code),
                message: body.and_then(|b| b.message),
            });
        }
        serde_json::from_slice(&bytes).map_err(|_| ZoomError::Unexpected("users/me body"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;

    fn client() -> ZoomClient {
        let env: HashMap<&str, &str> = HashMap::from([
            ("TABLE_NAME", "t"),
            ("APP_SECRET_ID", "s"),
            (
                "ZOOM_REDIRECT_URI",
                "https://api.example.com/zoom/oauth/callback",
            ),
            (
                "PORTAL_INTEGRATION_URL",
                "https://portal.example.com/settings/integration",
            ),
        ]);
        let cfg = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        ZoomClient::new(LazyHttp::new(Duration::from_secs(5)), &cfg).unwrap()
    }

    fn secret() -> AppSecret {
        AppSecret::from_json(
            r#"{"zoom_client_id":"cid","zoom_client_secret":"sec",
                "token_encryption_keys":{"k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"active_token_key_id":"k"}"#,
        )
        .unwrap()
    }

    #[test]
    fn authorize_url_carries_exactly_the_oauth_parameters() {
        let a = client().authorize(&secret());
        assert_eq!(a.url.origin().ascii_serialization(), "https://zoom.us");
        assert_eq!(a.url.path(), "/oauth/authorize");
        let q: HashMap<String, String> = a.url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(
            q["redirect_uri"],
            "https://api.example.com/zoom/oauth/callback"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], a.state.expose_secret());
        assert_eq!(q.len(), 6, "{q:?}");
        // PKCE S256: challenge = BASE64URL(SHA256(verifier)), verifier 43+ chars.
        let v = a.pkce_verifier.expose_secret();
        assert!(v.len() >= 43);
        assert_eq!(
            q["code_challenge"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
        );
    }

    #[test]
    fn states_are_long_random_and_fresh() {
        let c = client();
        let s = secret();
        let states: std::collections::HashSet<String> = (0..200)
            .map(|_| c.authorize(&s).state.expose_secret().to_owned())
            .collect();
        assert_eq!(states.len(), 200);
        for st in &states {
            let bytes = URL_SAFE_NO_PAD.decode(st).unwrap();
            assert!(bytes.len() * 8 >= 128, "state has {} bits", bytes.len() * 8);
        }
    }

    #[test]
    fn grant_debug_is_redacted() {
        let g = TokenGrant {
            access_token: SecretString::from("ACCESS-CANARY"),
            refresh_token: SecretString::from("REFRESH-CANARY"),
            expires_in: Duration::from_secs(1),
            scopes: vec![],
        };
        let d = format!("{g:?}");
        assert!(!d.contains("CANARY"), "{d}");
    }
}
