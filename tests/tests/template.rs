//! The SAM template, the function crates and the local gateway agree.

use std::collections::BTreeSet;

use local_gateway::gateway::Function;
use local_gateway::template::{RouteAuth, Template};

#[test]
fn every_function_crate_is_in_the_template_and_the_gateway_runs_it() {
    let t = Template::embedded().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    let crates: BTreeSet<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let in_template: BTreeSet<String> = t.functions.values().cloned().collect();
    assert_eq!(
        crates, in_template,
        "functions/ and template.yaml list the same functions"
    );
    for bin in &in_template {
        assert!(
            Function::from_binary(bin).is_some(),
            "the local gateway can run {bin}"
        );
    }
    // Every function is reachable: a route, a schedule or a queue.
    for bin in &in_template {
        let used = t.routes.iter().any(|r| &r.function == bin)
            || t.schedules.iter().any(|s| &s.function == bin)
            || t.queues.iter().any(|q| &q.function == bin);
        assert!(used, "{bin} has no trigger");
    }
}

#[test]
fn routes_are_unique_and_only_zooms_are_public() {
    let t = Template::embedded().unwrap();
    let mut seen = BTreeSet::new();
    for r in &t.routes {
        assert!(
            seen.insert((r.method.clone(), r.path.clone())),
            "duplicate route {} {}",
            r.method,
            r.path
        );
        match &r.auth {
            RouteAuth::None => assert!(
                r.path.starts_with("/zoom/"),
                "{} {} is public",
                r.method,
                r.path
            ),
            RouteAuth::Jwt { scopes } => {
                assert!(!scopes.is_empty(), "{} {} needs a scope", r.method, r.path)
            }
        }
    }
    let public: Vec<String> = t
        .routes
        .iter()
        .filter(|r| r.auth == RouteAuth::None)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        public,
        vec!["GET /zoom/oauth/callback", "POST /zoom/webhooks"]
    );
}

#[test]
fn openapi_document_lists_exactly_the_templates_routes() {
    let t = Template::embedded().unwrap();
    let doc: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../docs/openapi.yaml")).unwrap();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in ops.as_mapping().unwrap() {
            documented.insert(format!(
                "{} {}",
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap()
            ));
        }
    }
    let routed: BTreeSet<String> = t
        .routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(documented, routed);
}
