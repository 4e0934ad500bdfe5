//! Reads `template.yaml`: the HTTP routes (and which function serves each),
//! the table definition and the app secret. The gateway serves exactly the
//! template's routes, so the two cannot drift apart.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_yaml::Value;

/// The template, embedded at build time.
pub const TEMPLATE_YAML: &str = include_str!("../../../template.yaml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    /// Public route (`Authorizer: NONE`).
    None,
    /// Portal JWT with at least one of these scopes (empty = any).
    Jwt { scopes: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`) that serves it.
    pub function: String,
    pub logical_id: String,
    pub auth: RouteAuth,
}

/// A function run by an EventBridge schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub function: String,
    pub logical_id: String,
    pub expression: String,
}

impl Schedule {
    /// `rate(N minute[s]|hour[s]|day[s])` as a period.
    pub fn period(&self) -> Option<std::time::Duration> {
        let inner = self.expression.strip_prefix("rate(")?.strip_suffix(')')?;
        let (n, unit) = inner.split_once(' ')?;
        let n: u64 = n.trim().parse().ok()?;
        let secs = match unit.trim().trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return None,
        };
        Some(std::time::Duration::from_secs(n * secs))
    }
}

/// An SQS event source mapping.
#[derive(Debug, Clone)]
pub struct QueueMapping {
    pub function: String,
    /// Logical id of the queue.
    pub queue: String,
    pub batch_size: i32,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<Route>,
    pub schedules: Vec<Schedule>,
    pub queues: Vec<QueueMapping>,
    /// Logical id → binary name, for every function in the template.
    pub functions: BTreeMap<String, String>,
    pub table: Value,
    pub parameters: BTreeMap<String, Value>,
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(k))
}

fn tag_name(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string(), &t.value)),
        _ => None,
    }
}

impl Template {
    pub fn embedded() -> anyhow::Result<Self> {
        Self::parse(TEMPLATE_YAML)
    }

    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let doc: Value = serde_yaml::from_str(yaml).context("template.yaml is not YAML")?;
        let parameters: BTreeMap<String, Value> = get(&doc, "Parameters")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let resources = get(&doc, "Resources")
            .and_then(Value::as_mapping)
            .context("template has no Resources")?;
        let default_auth = get(&doc, "Resources")
            .and_then(|r| {
                r.as_mapping()?.values().find(|v| {
                    get(v, "Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi")
                })
            })
            .and_then(|api| get(api, "Properties"))
            .and_then(|p| get(p, "Auth"))
            .and_then(|a| get(a, "DefaultAuthorizer"))
            .and_then(Value::as_str)
            .map(str::to_owned);

        let mut t = Template {
            routes: vec![],
            schedules: vec![],
            queues: vec![],
            functions: BTreeMap::new(),
            table: Value::Null,
            parameters,
        };
        for (id, res) in resources {
            let id = id.as_str().context("resource id")?.to_owned();
            match get(res, "Type").and_then(Value::as_str) {
                Some("AWS::Serverless::Function") => {
                    let binary = get(res, "Metadata")
                        .and_then(|m| get(m, "BuildProperties"))
                        .and_then(|b| get(b, "Binary"))
                        .and_then(Value::as_str)
                        .with_context(|| {
                            format!("{id}: Metadata.BuildProperties.Binary is required")
                        })?
                        .to_owned();
                    t.functions.insert(id.clone(), binary.clone());
                    let events = get(res, "Properties")
                        .and_then(|p| get(p, "Events"))
                        .and_then(Value::as_mapping);
                    for ev in events.into_iter().flat_map(|m| m.values()) {
                        let ty = get(ev, "Type").and_then(Value::as_str);
                        if matches!(ty, Some("Schedule" | "ScheduleV2")) {
                            let expression = get(ev, "Properties")
                                .and_then(|p| get(p, "ScheduleExpression"))
                                .and_then(Value::as_str)
                                .context("ScheduleExpression")?
                                .to_owned();
                            t.schedules.push(Schedule {
                                function: binary.clone(),
                                logical_id: id.clone(),
                                expression,
                            });
                            continue;
                        }
                        if ty == Some("SQS") {
                            let p =
                                get(ev, "Properties").context("SQS event without Properties")?;
                            let queue = match get(p, "Queue").and_then(tag_name) {
                                Some((tag, v)) if tag == "!GetAtt" => v
                                    .as_str()
                                    .and_then(|s| s.split('.').next())
                                    .context("Queue: !GetAtt Queue.Arn")?
                                    .to_owned(),
                                _ => bail!("{id}: SQS Queue must be !GetAtt <Queue>.Arn"),
                            };
                            let batch_size =
                                get(p, "BatchSize").and_then(Value::as_i64).unwrap_or(10) as i32;
                            t.queues.push(QueueMapping {
                                function: binary.clone(),
                                queue,
                                batch_size,
                            });
                            continue;
                        }
                        if ty != Some("HttpApi") {
                            continue;
                        }
                        let p =
                            get(ev, "Properties").context("HttpApi event without Properties")?;
                        let method = get(p, "Method")
                            .and_then(Value::as_str)
                            .context("Method")?
                            .to_ascii_uppercase();
                        let path = get(p, "Path")
                            .and_then(Value::as_str)
                            .context("Path")?
                            .to_owned();
                        let auth = get(p, "Auth");
                        let authorizer = auth
                            .and_then(|a| get(a, "Authorizer"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .or(default_auth.clone());
                        let auth = match authorizer.as_deref() {
                            None | Some("NONE") => RouteAuth::None,
                            Some(_) => {
                                let scopes = auth
                                    .and_then(|a| get(a, "AuthorizationScopes"))
                                    .and_then(Value::as_sequence)
                                    .map(|s| {
                                        s.iter()
                                            .map(|v| t.resolve(v))
                                            .collect::<anyhow::Result<Vec<_>>>()
                                    })
                                    .transpose()?
                                    .unwrap_or_default();
                                RouteAuth::Jwt { scopes }
                            }
                        };
                        t.routes.push(Route {
                            method,
                            path,
                            function: binary.clone(),
                            logical_id: id.clone(),
                            auth,
                        });
                    }
                }
                Some("AWS::DynamoDB::Table") => {
                    t.table = get(res, "Properties")
                        .cloned()
                        .context("Table without Properties")?;
                }
                _ => {}
            }
        }
        if t.table.is_null() {
            bail!("template declares no DynamoDB table");
        }
        Ok(t)
    }

    /// A literal string or `!Ref Parameter` (its Default).
    pub fn resolve(&self, v: &Value) -> anyhow::Result<String> {
        match tag_name(v) {
            None => v
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("unsupported value {v:?}")),
            Some((tag, inner)) if tag == "!Ref" => {
                let name = inner.as_str().context("!Ref needs a name")?;
                let p = self
                    .parameters
                    .get(name)
                    .with_context(|| format!("unknown parameter {name}"))?;
                get(p, "Default")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("parameter {name} has no string Default"))
            }
            Some(_) => bail!("unsupported value in template: {v:?}"),
        }
    }

    /// The route for `method` + `path`, with its path parameters.
    pub fn match_route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&Route, BTreeMap<String, String>)> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.routes
            .iter()
            .filter(|r| r.method == method || r.method == "ANY")
            .find_map(|r| {
                let tsegs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
                let mut params = BTreeMap::new();
                for (i, t) in tsegs.iter().enumerate() {
                    if let Some(name) = t.strip_prefix('{').and_then(|x| x.strip_suffix("+}")) {
                        params.insert(name.to_owned(), segs.get(i..)?.join("/"));
                        return Some((r, params));
                    }
                    let s = segs.get(i)?;
                    if let Some(name) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                        if s.is_empty() {
                            return None;
                        }
                        let decoded = percent_decode(s)?;
                        params.insert(name.to_owned(), decoded);
                    } else if t != s {
                        return None;
                    }
                }
                (segs.len() == tsegs.len()).then_some((r, params))
            })
    }
}

/// API Gateway hands handlers decoded path parameters.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_template_routes() {
        let t = Template::embedded().unwrap();
        let (r, p) = t
            .match_route("POST", "/v1/accounts/acct-1/zoom/install")
            .unwrap();
        assert_eq!(r.function, "install");
        assert_eq!(p["account_id"], "acct-1");
        assert_eq!(
            r.auth,
            RouteAuth::Jwt {
                scopes: vec!["zoom.integration".into()]
            }
        );
        let (r, _) = t.match_route("GET", "/zoom/oauth/callback").unwrap();
        assert_eq!(
            (r.function.as_str(), &r.auth),
            ("oauth-callback", &RouteAuth::None)
        );
        assert!(
            t.match_route("GET", "/v1/accounts/acct-1/zoom/install")
                .is_none()
        );
        assert!(t.match_route("GET", "/v1/accounts//zoom").is_none());
        assert!(t.match_route("GET", "/v1/accounts/a/zoom/extra").is_none());
        let (_, p) = t.match_route("GET", "/v1/accounts/a%2Bb/zoom").unwrap();
        assert_eq!(p["account_id"], "a+b");
        let periods: Vec<_> = t
            .schedules
            .iter()
            .map(|s| (s.function.as_str(), s.period().unwrap().as_secs()))
            .collect();
        assert!(periods.contains(&("token-refresh", 600)), "{periods:?}");
        assert!(periods.contains(&("reconcile", 3600)), "{periods:?}");
        assert_eq!(t.queues.len(), 1);
        assert_eq!(
            (t.queues[0].function.as_str(), t.queues[0].queue.as_str()),
            ("number-worker", "NumberQueue")
        );
        let (r, p) = t
            .match_route(
                "PUT",
                "/v1/accounts/a/zoom/numbers/%2B16175550100/assignment",
            )
            .unwrap();
        assert_eq!(
            (r.function.as_str(), p["number"].as_str()),
            ("numbers", "+16175550100")
        );
        let (r, _) = t.match_route("POST", "/v1/inventory/imports").unwrap();
        assert_eq!(
            r.auth,
            RouteAuth::Jwt {
                scopes: vec!["zoom.carrier_admin".into()]
            }
        );
    }
}
