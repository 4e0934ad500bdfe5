//! The app secret (one JSON secret in Secrets Manager), fetched once and cached
//! per process with a TTL of at most five minutes so rotations are picked up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock::Clock;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read the app secret from Secrets Manager: {0}")]
    Fetch(String),
    #[error("the app secret has no SecretString")]
    Empty,
    /// Only the position is reported: serde's own message could quote a value.
    #[error("the app secret is not the expected JSON ({category} at line {line}, column {column})")]
    Shape {
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the app secret is invalid: {0}")]
    Invalid(&'static str),
}

/// The app secret's JSON shape. Unknown fields are refused so typos surface.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppSecret {
    zoom_client_id: String,
    zoom_client_secret: SecretString,
    #[serde(default)]
    webhook_secret_tokens: Vec<SecretString>,
    token_encryption_keys: BTreeMap<String, SecretString>,
    active_token_key_id: String,
}

/// The parsed app secret. `Debug` shows no secret values.
#[derive(Debug, Clone)]
pub struct AppSecret {
    pub zoom_client_id: String,
    pub zoom_client_secret: SecretString,
    /// Current first, then the previous one during a rotation.
    pub webhook_secret_tokens: Vec<SecretString>,
    /// Key id → base64 of a 32-byte AES-256-GCM key.
    pub token_encryption_keys: BTreeMap<String, SecretString>,
    pub active_token_key_id: String,
}

impl AppSecret {
    pub fn from_json(s: &str) -> Result<Self, SecretsError> {
        let raw: RawAppSecret = serde_json::from_str(s).map_err(|e| SecretsError::Shape {
            category: match e.classify() {
                serde_json::error::Category::Io => "io error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "wrong or missing field",
                serde_json::error::Category::Eof => "unexpected end",
            },
            line: e.line(),
            column: e.column(),
        })?;
        if raw.zoom_client_id.is_empty() || raw.zoom_client_secret.expose_secret().is_empty() {
            return Err(SecretsError::Invalid(
                "zoom_client_id and zoom_client_secret are required",
            ));
        }
        if !raw
            .token_encryption_keys
            .contains_key(&raw.active_token_key_id)
        {
            return Err(SecretsError::Invalid(
                "active_token_key_id must name a key in token_encryption_keys",
            ));
        }
        Ok(Self {
            zoom_client_id: raw.zoom_client_id,
            zoom_client_secret: raw.zoom_client_secret,
            webhook_secret_tokens: raw.webhook_secret_tokens,
            token_encryption_keys: raw.token_encryption_keys,
            active_token_key_id: raw.active_token_key_id,
        })
    }
}

/// Where the app secret comes from. Production and tests both use
/// [`SecretsManagerSource`]; the trait only lets the cache be tested for its TTL.
pub trait SecretSource: Send + Sync + 'static {
    fn fetch(&self) -> impl std::future::Future<Output = Result<String, SecretsError>> + Send;
}

pub struct SecretsManagerSource {
    aws: Arc<crate::context::LazyAws>,
    client: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(aws: Arc<crate::context::LazyAws>, secret_id: String) -> Self {
        Self {
            aws,
            client: tokio::sync::OnceCell::new(),
            secret_id,
        }
    }
}

impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<String, SecretsError> {
        let client = self
            .client
            .get_or_init(|| async { aws_sdk_secretsmanager::Client::new(self.aws.get().await) })
            .await;
        let out = client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| {
                SecretsError::Fetch(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        out.secret_string.ok_or(SecretsError::Empty)
    }
}

/// Caches the parsed secret for `ttl`; concurrent callers share one fetch.
pub struct SecretsCache<S = SecretsManagerSource> {
    source: S,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cached: tokio::sync::Mutex<Option<(OffsetDateTime, Arc<AppSecret>)>>,
}

impl<S: SecretSource> SecretsCache<S> {
    pub fn new(source: S, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let ttl = ttl.min(Duration::from_secs(300));
        Self {
            source,
            ttl,
            clock,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Result<Arc<AppSecret>, SecretsError> {
        let mut slot = self.cached.lock().await;
        let now = self.clock.now();
        if let Some((fetched_at, secret)) = slot.as_ref()
            && now >= *fetched_at
            && now - *fetched_at < self.ttl
        {
            return Ok(secret.clone());
        }
        let secret = Arc::new(AppSecret::from_json(&self.source.fetch().await?)?);
        *slot = Some((now, secret.clone()));
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;

    const GOOD: &str = r#"{"zoom_client_id":"cid","zoom_client_secret":"CANARY-client-secret",
        "webhook_secret_tokens":["w1"],"token_encryption_keys":{"k1":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
        "active_token_key_id":"k1"}"#;

    struct Counting(Arc<AtomicUsize>, &'static str);
    impl SecretSource for Counting {
        async fn fetch(&self) -> Result<String, SecretsError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(self.1.to_string())
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = AppSecret::from_json(GOOD).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("CANARY"), "{dbg}");
        assert!(dbg.contains("cid"));
    }

    #[test]
    fn shape_errors_do_not_quote_values() {
        let bad = r#"{"zoom_client_id":"cid","zoom_client_secret":12345678,"token_encryption_keys":{},"active_token_key_id":"k"}"#;
        let e = AppSecret::from_json(bad).unwrap_err().to_string();
        assert!(!e.contains("12345678"), "{e}");
        let e = AppSecret::from_json(&GOOD.replace("\"k1\":\"AAA", "\"k2\":\"AAA")).unwrap_err();
        assert!(matches!(e, SecretsError::Invalid(_)));
    }

    #[tokio::test]
    async fn cache_refetches_after_ttl_only() {
        let n = Arc::new(AtomicUsize::new(0));
        let clock = ManualClock::new(datetime!(2026-12-04 10:00 UTC));
        let cache = SecretsCache::new(
            Counting(n.clone(), GOOD),
            Duration::from_secs(900), // clamped to 300
            Arc::new(clock.clone()),
        );
        cache.get().await.unwrap();
        cache.get().await.unwrap();
        clock.advance(time::Duration::seconds(299));
        cache.get().await.unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        clock.advance(time::Duration::seconds(1));
        cache.get().await.unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }
}
