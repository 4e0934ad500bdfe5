//! Everything a handler needs, built once per process (cold start) and reused
//! by every invocation.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::secrets::{SecretsCache, SecretsManagerSource};
use crate::store::Store;
use crate::zoom::{LazyHttp, ZoomClient, ZoomError};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Zoom(#[from] ZoomError),
}

/// The AWS SDK configuration, loaded on first use: a cold start does not pay
/// for it (about 2.4 ms here) before the first request that needs AWS.
#[derive(Default)]
pub struct LazyAws {
    cell: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl LazyAws {
    pub async fn get(&self) -> &aws_config::SdkConfig {
        self.cell
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }
}

pub struct AppContext {
    pub config: Config,
    pub store: Store,
    pub secrets: SecretsCache,
    pub zoom: ZoomClient,
    pub clock: Arc<dyn Clock>,
    /// Per-process refresh coordination (single flight, lease owner id).
    pub refresh: crate::tokens::RefreshCoordinator,
    /// Zoom rate budget and breaker per Zoom account.
    pub budget: crate::zoom_api::ZoomBudget,
    aws: Arc<LazyAws>,
    sqs: tokio::sync::OnceCell<aws_sdk_sqs::Client>,
}

impl AppContext {
    /// The SQS client, built on first use.
    pub async fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async { aws_sdk_sqs::Client::new(self.aws.get().await) })
            .await
    }

    /// Production entry: configuration from the environment, the system clock.
    pub async fn from_env() -> Result<Self, ContextError> {
        Self::build(Config::from_env()?, Arc::new(SystemClock)).await
    }

    /// Builds the SDK clients and the HTTP client once. AWS endpoints follow
    /// the standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, ...).
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, ContextError> {
        let aws = Arc::new(LazyAws::default());
        let http = LazyHttp::new(config.http_timeout);
        Ok(Self {
            store: Store::new(aws.clone(), config.table_name.clone()),
            secrets: SecretsCache::new(
                SecretsManagerSource::new(aws.clone(), config.app_secret_id.clone()),
                config.secret_cache_ttl,
                clock.clone(),
            ),
            zoom: ZoomClient::new(http, &config)?,
            // The lease outlives the longest refresh call.
            refresh: crate::tokens::RefreshCoordinator::new(
                config.http_timeout.as_secs() as i64 * 2 + 20,
            ),
            budget: crate::zoom_api::ZoomBudget::new(
                &config.zoom_plan_tier,
                config.zoom_rate_share_percent,
            ),
            aws,
            sqs: tokio::sync::OnceCell::new(),
            clock,
            config,
        })
    }
}
