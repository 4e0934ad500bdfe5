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
    pub sqs: aws_sdk_sqs::Client,
}

impl AppContext {
    /// Production entry: configuration from the environment, the system clock.
    pub async fn from_env() -> Result<Self, ContextError> {
        Self::build(Config::from_env()?, Arc::new(SystemClock)).await
    }

    /// Builds the SDK clients and the HTTP client once. AWS endpoints follow
    /// the standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, ...).
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, ContextError> {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let sm = aws_sdk_secretsmanager::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let http = LazyHttp::new(config.http_timeout);
        Ok(Self {
            store: Store::new(dynamo, config.table_name.clone()),
            secrets: SecretsCache::new(
                SecretsManagerSource::new(sm, config.app_secret_id.clone()),
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
            sqs,
            clock,
            config,
        })
    }
}
