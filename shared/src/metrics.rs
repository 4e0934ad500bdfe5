//! Metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per
//! data point; Lambda's log pipeline turns it into a metric in the
//! `ZoomConnector` namespace, which the template's alarms watch.

pub const NAMESPACE: &str = "ZoomConnector";

/// The EMF line for one data point (no dimensions).
pub fn emf_line(name: &str, value: f64, unit: &str, timestamp_ms: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": [{"Name": name, "Unit": unit}]}]
        },
        name: value,
    })
    .to_string()
}

/// Emits a count.
pub fn count(name: &str, n: u64) {
    let ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    println!("{}", emf_line(name, n as f64, "Count", ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&emf_line("WebhookRejections", 1.0, "Count", 1700000000000))
                .unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "ZoomConnector"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "WebhookRejections"
        );
        assert_eq!(v["_aws"]["Timestamp"], 1700000000000i64);
        assert_eq!(v["WebhookRejections"], 1.0);
    }
}
