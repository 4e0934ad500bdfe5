//! Structured JSON logs on stdout (CloudWatch reads them as they are).

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; `RUST_LOG` sets the filter (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(true)
        .try_init();
}
