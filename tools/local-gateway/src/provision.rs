//! Creates the table and the app secret exactly as `template.yaml` declares
//! them, on DynamoDB Local and moto (used by `./dev` and by the tests).

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde_yaml::Value;

use crate::template::Template;

fn s<'a>(v: &'a Value, k: &str) -> anyhow::Result<&'a str> {
    v.get(k)
        .and_then(Value::as_str)
        .with_context(|| format!("table definition: {k} missing"))
}

fn key_schema(v: &Value) -> anyhow::Result<Vec<KeySchemaElement>> {
    v.as_sequence()
        .context("KeySchema must be a list")?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(s(k, "AttributeName")?)
                .key_type(KeyType::from(s(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    template: &Template,
    name: &str,
) -> anyhow::Result<()> {
    let t = &template.table;
    let mut req = client.create_table().table_name(name);
    for a in t
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .context("AttributeDefinitions")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(s(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(s(a, "AttributeType")?))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(key_schema(t.get("KeySchema").context("KeySchema")?)?));
    match t.get("BillingMode").and_then(Value::as_str) {
        Some("PAY_PER_REQUEST") => req = req.billing_mode(BillingMode::PayPerRequest),
        other => {
            bail!("only PAY_PER_REQUEST tables are supported locally, template says {other:?}")
        }
    }
    for g in t
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let p = g.get("Projection").context("Projection")?;
        let mut proj =
            Projection::builder().projection_type(ProjectionType::from(s(p, "ProjectionType")?));
        for a in p
            .get("NonKeyAttributes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            proj = proj.non_key_attributes(a.as_str().context("NonKeyAttributes")?);
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(s(g, "IndexName")?)
                .set_key_schema(Some(key_schema(g.get("KeySchema").context("KeySchema")?)?))
                .projection(proj.build())
                .build()?,
        );
    }
    req.send().await.map_err(|e| {
        anyhow::anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
    })?;
    if let Some(ttl) = t.get("TimeToLiveSpecification")
        && ttl.get("Enabled").and_then(Value::as_bool) == Some(true)
    {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(s(ttl, "AttributeName")?)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
    }
    Ok(())
}

/// An app secret for local use, with a fresh token-encryption key.
pub fn app_secret_json(client_id: &str, client_secret: &str, webhook_secret: &str) -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    serde_json::json!({
        "zoom_client_id": client_id,
        "zoom_client_secret": client_secret,
        "webhook_secret_tokens": [webhook_secret],
        "token_encryption_keys": {"local-1": STANDARD.encode(key)},
        "active_token_key_id": "local-1",
    })
    .to_string()
}

pub async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    secret_json: &str,
) -> anyhow::Result<()> {
    client
        .create_secret()
        .name(name)
        .description("Zoom app secret (local)")
        .secret_string(secret_json)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
        })?;
    Ok(())
}

/// The number-operations queue and its dead-letter queue (redrive after 5
/// receives, as template.yaml declares). Locally the visibility timeout is
/// short so failed messages come back quickly. Returns (queue URL, DLQ URL).
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_secs: u32,
) -> anyhow::Result<(String, String)> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let err = |e: aws_sdk_sqs::error::SdkError<_, _>| {
        anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    };
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(err)?;
    let dlq_url = dlq.queue_url.unwrap_or_default();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
    let dlq_arn = attrs
        .attributes()
        .and_then(|a| a.get(&A::QueueArn))
        .cloned()
        .unwrap_or_default();
    let q = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::VisibilityTimeout, visibility_secs.to_string())
        .attributes(
            A::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string(),
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
    Ok((q.queue_url.unwrap_or_default(), dlq_url))
}
