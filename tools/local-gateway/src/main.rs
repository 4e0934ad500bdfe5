//! `local-gateway serve` — serve template.yaml's routes on 127.0.0.1:$PORT.
//! `local-gateway provision --table T --secret S --client-id ID --client-secret SECRET [--webhook-secret W]`
//!   — create the table and app secret as template.yaml declares them.

use std::sync::Arc;

use anyhow::Context;
use local_gateway::gateway::{Gateway, GatewayConfig, router};
use local_gateway::jwt::JwtKeys;
use local_gateway::template::Template;

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| d.to_owned())
}

fn flag(args: &[String], name: &str) -> anyhow::Result<String> {
    let i = args
        .iter()
        .position(|a| a == name)
        .with_context(|| format!("{name} is required"))?;
    args.get(i + 1)
        .cloned()
        .with_context(|| format!("{name} needs a value"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let template = Template::embedded()?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    match args.first().map(String::as_str) {
        Some("provision") => {
            let table = flag(&args, "--table")?;
            let secret = flag(&args, "--secret")?;
            let json = local_gateway::provision::app_secret_json(
                &flag(&args, "--client-id")?,
                &flag(&args, "--client-secret")?,
                &flag(&args, "--webhook-secret").unwrap_or_else(|_| "local-webhook-secret".into()),
            );
            local_gateway::provision::create_table(
                &aws_sdk_dynamodb::Client::new(&aws),
                &template,
                &table,
            )
            .await?;
            local_gateway::provision::create_secret(
                &aws_sdk_secretsmanager::Client::new(&aws),
                &secret,
                &json,
            )
            .await?;
            let queue = flag(&args, "--queue").unwrap_or_else(|_| format!("{table}-number-ops"));
            let (url, _) = local_gateway::provision::create_queues(
                &aws_sdk_sqs::Client::new(&aws),
                &queue,
                30,
            )
            .await?;
            println!("created table {table} and secret {secret}");
            println!("NUMBER_QUEUE_URL={url}");
            Ok(())
        }
        None | Some("serve") => {
            let port: u16 = env_or("PORT", "3000").parse().context("PORT")?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            let addr = listener.local_addr()?;
            let base = format!("http://{addr}");
            let config = GatewayConfig {
                issuer: env_or("PORTAL_JWT_ISSUER", &format!("{base}/__dev")),
                audience: env_or("PORTAL_JWT_AUDIENCE", "zoom-connector"),
                account_claim: env_or("PORTAL_ACCOUNT_CLAIM", "portal_account_id"),
                demo_account: env_or("DEMO_PORTAL_ACCOUNT", "demo-portal-account"),
            };
            let ctx = shared::AppContext::from_env().await?;
            let gw = Arc::new(Gateway::new(template, ctx, JwtKeys::generate()?, config)?);
            if env_or("LOCAL_SCHEDULES", "on") != "off" {
                local_gateway::gateway::spawn_schedules(gw.clone());
            }
            // The SQS event source mapping of template.yaml's worker.
            if let Some(url) = std::env::var("NUMBER_QUEUE_URL")
                .ok()
                .filter(|u| !u.is_empty())
            {
                let mapping = gw
                    .template
                    .queues
                    .iter()
                    .find(|q| q.queue == "NumberQueue")
                    .cloned();
                if let Some(m) = mapping
                    && let Some(f) = local_gateway::gateway::Function::from_binary(&m.function)
                {
                    local_gateway::gateway::spawn_sqs_poller(gw.clone(), url, f, m.batch_size);
                }
            }
            println!("local-gateway listening on {base}");
            axum::serve(listener, router(gw))
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other}; use serve or provision"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
}
