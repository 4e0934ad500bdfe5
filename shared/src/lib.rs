//! Everything the functions share: domain types, storage (DynamoDB), secrets
//! (Secrets Manager), the Zoom client, Portal auth and HTTP helpers.
//!
//! Handlers stay thin: they parse input, check the caller, call one operation
//! from [`install_flow`] (or later modules) and map the result to HTTP.

pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod http;
pub mod ids;
pub mod install_flow;
pub mod metrics;
pub mod numbers;
pub mod retention;
pub mod secrets;
pub mod store;
pub mod telemetry;

pub mod tokens;
pub mod webhook;
pub mod zoom;
pub mod zoom_api;

pub use context::AppContext;
