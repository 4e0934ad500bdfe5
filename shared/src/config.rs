//! Configuration from environment variables, read once per process.
//! Every variable is documented in the README ("Configuration").

use std::time::Duration;

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table holding every item (`TABLE_NAME`).
    pub table_name: String,
    /// Secrets Manager id or ARN of the app secret (`APP_SECRET_ID`).
    pub app_secret_id: String,
    /// Zoom's OAuth host, `https://zoom.us` (`ZOOM_OAUTH_BASE_URL`).
    pub zoom_oauth_base: Url,
    /// Zoom's REST base, `https://api.zoom.us/v2` (`ZOOM_API_BASE_URL`).
    pub zoom_api_base: Url,
    /// The exact redirect URL registered on the Zoom app (`ZOOM_REDIRECT_URI`).
    pub redirect_uri: Url,
    /// The Portal's Settings > Integration page (`PORTAL_INTEGRATION_URL`).
    pub portal_integration_url: Url,
    /// Origins a `return_to` may point at (`PORTAL_ALLOWED_ORIGINS`, comma separated).
    pub portal_allowed_origins: Vec<String>,
    /// JWT claim naming the caller's Portal account (`PORTAL_ACCOUNT_CLAIM`).
    pub portal_account_claim: String,
    /// Life of an install state (`INSTALL_STATE_TTL_SECS`, at most 600).
    pub state_ttl: Duration,
    /// How long a fetched app secret is reused (`SECRET_CACHE_TTL_SECS`, at most 300).
    pub secret_cache_ttl: Duration,
    /// Timeout of every outbound HTTP call (`HTTP_TIMEOUT_MS`).
    pub http_timeout: Duration,
    /// Days a deauthorized account's Zoom data is kept (`DEAUTH_RETENTION_DAYS`, 0..=10).
    pub deauth_retention_days: i64,
    /// Zoom plan tier for the rate budget: `business` (Business+) or `pro` (`ZOOM_PLAN_TIER`).
    pub zoom_plan_tier: String,
    /// Share of the published rate this service uses (`ZOOM_RATE_SHARE_PERCENT`, default 50).
    pub zoom_rate_share_percent: u32,
    /// SIP trunk name the carrier's numbers route through (`ZOOM_SIP_TRUNK_NAME`).
    pub sip_trunk_name: String,
    /// SQS queue of number operations (`NUMBER_QUEUE_URL`); optional for functions that do not enqueue.
    pub number_queue_url: Option<String>,
    /// Scope of the carrier's operators in Portal JWTs (`CARRIER_ADMIN_SCOPE`).
    pub carrier_admin_scope: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let url = |name: &'static str, v: String| {
            Url::parse(&v).map_err(|e| ConfigError::Invalid {
                name,
                why: e.to_string(),
            })
        };
        let secs = |name: &'static str, default: u64, max: u64| -> Result<Duration, ConfigError> {
            let v = match get(name) {
                None => default,
                Some(s) => s.parse::<u64>().map_err(|e| ConfigError::Invalid {
                    name,
                    why: e.to_string(),
                })?,
            };
            if v == 0 || v > max {
                return Err(ConfigError::Invalid {
                    name,
                    why: format!("must be 1..={max}"),
                });
            }
            Ok(Duration::from_secs(v))
        };

        let portal_integration_url = url("PORTAL_INTEGRATION_URL", req("PORTAL_INTEGRATION_URL")?)?;
        let portal_allowed_origins = match get("PORTAL_ALLOWED_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let u = Url::parse(s).map_err(|e| ConfigError::Invalid {
                        name: "PORTAL_ALLOWED_ORIGINS",
                        why: e.to_string(),
                    })?;
                    Ok(u.origin().ascii_serialization())
                })
                .collect::<Result<Vec<_>, ConfigError>>()?,
            None => vec![portal_integration_url.origin().ascii_serialization()],
        };
        let timeout_ms = match get("HTTP_TIMEOUT_MS") {
            None => 10_000,
            Some(s) => s.parse::<u64>().map_err(|e| ConfigError::Invalid {
                name: "HTTP_TIMEOUT_MS",
                why: e.to_string(),
            })?,
        };
        let mut api = url(
            "ZOOM_API_BASE_URL",
            get("ZOOM_API_BASE_URL").unwrap_or_else(|| "https://api.zoom.us/v2".into()),
        )?;
        // Paths such as `users/me` are joined onto it: make sure it ends with '/'.
        if !api.path().ends_with('/') {
            let p = format!("{}/", api.path());
            api.set_path(&p);
        }
        Ok(Self {
            table_name: req("TABLE_NAME")?,
            app_secret_id: req("APP_SECRET_ID")?,
            zoom_oauth_base: url(
                "ZOOM_OAUTH_BASE_URL",
                get("ZOOM_OAUTH_BASE_URL").unwrap_or_else(|| "https://zoom.us".into()),
            )?,
            zoom_api_base: api,
            redirect_uri: url("ZOOM_REDIRECT_URI", req("ZOOM_REDIRECT_URI")?)?,
            portal_integration_url,
            portal_allowed_origins,
            portal_account_claim: get("PORTAL_ACCOUNT_CLAIM")
                .unwrap_or_else(|| "portal_account_id".into()),
            state_ttl: secs("INSTALL_STATE_TTL_SECS", 600, 600)?,
            secret_cache_ttl: secs("SECRET_CACHE_TTL_SECS", 300, 300)?,
            http_timeout: Duration::from_millis(timeout_ms.clamp(100, 29_000)),
            zoom_plan_tier: match get("ZOOM_PLAN_TIER").as_deref() {
                None | Some("business") => "business".into(),
                Some("pro") => "pro".into(),
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        name: "ZOOM_PLAN_TIER",
                        why: "business or pro".into(),
                    });
                }
            },
            zoom_rate_share_percent: match get("ZOOM_RATE_SHARE_PERCENT") {
                None => 50,
                Some(s) => match s.parse::<u32>() {
                    Ok(p) if (1..=100).contains(&p) => p,
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: "ZOOM_RATE_SHARE_PERCENT",
                            why: "1..=100".into(),
                        });
                    }
                },
            },
            sip_trunk_name: get("ZOOM_SIP_TRUNK_NAME").unwrap_or_else(|| "carrier-trunk-1".into()),
            number_queue_url: get("NUMBER_QUEUE_URL"),
            carrier_admin_scope: get("CARRIER_ADMIN_SCOPE")
                .unwrap_or_else(|| "zoom.carrier_admin".into()),
            deauth_retention_days: match get("DEAUTH_RETENTION_DAYS") {
                None => 10,
                Some(s) => match s.parse::<i64>() {
                    Ok(d) if (0..=10).contains(&d) => d,
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: "DEAUTH_RETENTION_DAYS",
                            why: "must be 0..=10 (Zoom asks for deletion within 10 days)".into(),
                        });
                    }
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "t"),
        ("APP_SECRET_ID", "s"),
        (
            "ZOOM_REDIRECT_URI",
            "https://api.example.com/zoom/oauth/callback",
        ),
        (
            "PORTAL_INTEGRATION_URL",
            "https://portal.example.com/settings/integration",
        ),
    ];

    #[test]
    fn defaults_follow_zoom_and_the_portal_url() {
        let c = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(c.zoom_oauth_base.as_str(), "https://zoom.us/");
        assert_eq!(
            c.zoom_api_base.join("users/me").unwrap().as_str(),
            "https://api.zoom.us/v2/users/me"
        );
        assert_eq!(
            c.portal_allowed_origins,
            vec!["https://portal.example.com".to_string()]
        );
        assert_eq!(c.state_ttl.as_secs(), 600);
        assert_eq!(c.secret_cache_ttl.as_secs(), 300);
        assert_eq!(c.portal_account_claim, "portal_account_id");
    }

    #[test]
    fn missing_and_out_of_range_values_are_named() {
        let e = Config::from_lookup(env(&BASE[1..])).unwrap_err();
        assert!(e.to_string().contains("TABLE_NAME"), "{e}");
        let mut v = BASE.to_vec();
        v.push(("SECRET_CACHE_TTL_SECS", "301"));
        let e = Config::from_lookup(env(&v)).unwrap_err();
        assert!(e.to_string().contains("SECRET_CACHE_TTL_SECS"), "{e}");
    }
}
