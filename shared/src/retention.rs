//! Zoom's data rule after deauthorization: the account's Zoom data is purged
//! once its retention (default 10 days) is over. The audit trail stays.

use serde::Serialize;

use crate::context::AppContext;
use crate::store::{AuditItem, DUE_SHARDS, StoreError};

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    pub due: usize,
    pub purged: usize,
    pub failed: usize,
}

/// Purges every deauthorized account whose retention has ended. One
/// account's failure never stops the others.
pub async fn purge_due(ctx: &AppContext) -> Result<PurgeReport, StoreError> {
    let now = ctx.clock.now();
    let mut accounts = Vec::new();
    for shard in 0..DUE_SHARDS {
        accounts.extend(
            ctx.store
                .due_accounts(&format!("PURGE#{shard}"), now.unix_timestamp())
                .await?,
        );
    }
    let mut report = PurgeReport {
        due: accounts.len(),
        ..Default::default()
    };
    for account in accounts {
        let audit = AuditItem::new(&account, now, "zoom_data_purged", "system:reconcile", None);
        match ctx.store.purge_zoom_data(&account, &audit, now).await {
            Ok(true) => report.purged += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(portal_account = %account, error = %e, "purge failed");
                report.failed += 1;
            }
        }
    }
    tracing::info!(?report, "purge run done");
    Ok(report)
}
