//! The local gateway: what only AWS does, done on loopback. It serves the
//! routes of `template.yaml` (API Gateway HTTP API + JWT authorizer) by calling
//! the functions' own handlers, provisions the table and secret as the
//! template declares them, and serves the demo Portal page.

pub mod gateway;
pub mod jwt;
pub mod page;
pub mod provision;
pub mod template;
