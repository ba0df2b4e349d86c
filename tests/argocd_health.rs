//! The Argo CD health check in examples/argocd/health.lua, run the way Argo CD runs it (the
//! object as the global `obj`, the chunk returns `{status, message}`) against sample objects,
//! and the copy embedded in examples/argocd/argocd-cm.yaml.

use std::{fs, path::Path};

use mlua::{Lua, Table, Value};
use serde_json::{Value as Json, json};

const HEALTH_KEY: &str =
    "resource.customizations.health.cloudfront.invalidation.io_CloudFrontInvalidation";

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// JSON as Argo CD hands it to Lua: objects and arrays become tables, null becomes nil.
fn to_lua(lua: &Lua, json: &Json) -> mlua::Result<Value> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().expect("a JSON number is an f64")),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        Json::Object(fields) => {
            let table = lua.create_table()?;
            for (k, v) in fields {
                table.raw_set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}

/// Runs health.lua on `obj`; returns (status, message).
fn health(obj: &Json) -> (String, String) {
    let lua = Lua::new();
    lua.globals()
        .set("obj", to_lua(&lua, obj).expect("object to Lua"))
        .expect("set obj");
    let hs: Table = lua
        .load(read("examples/argocd/health.lua"))
        .set_name("health.lua")
        .eval()
        .expect("health.lua returns a table");
    let status: String = hs.get("status").expect("hs.status is a string");
    let message: String = hs.get("message").expect("hs.message is a string");
    assert!(
        ["Healthy", "Progressing", "Degraded"].contains(&status.as_str()),
        "unexpected health status {status}"
    );
    assert!(!message.is_empty(), "hs.message should say something");
    (status, message)
}

fn invalidation(status: Option<Json>) -> Json {
    let mut obj = json!({
        "apiVersion": "cloudfront.invalidation.io/v1alpha1",
        "kind": "CloudFrontInvalidation",
        "metadata": {"name": "website-release", "namespace": "web", "generation": 1},
        "spec": {"distributionId": "EXAMPLEDIST01", "paths": ["/index.html"], "timeoutSeconds": 900},
    });
    if let Some(status) = status {
        obj["status"] = status;
    }
    obj
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Json {
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2024-06-01T12:00:00Z", "observedGeneration": 1,
    })
}

fn with_phase(phase: &str, message: Option<&str>) -> Json {
    let mut status = json!({"phase": phase, "observedGeneration": 1});
    if let Some(m) = message {
        status["message"] = json!(m);
    }
    invalidation(Some(status))
}

#[test]
fn no_status_yet_is_progressing() {
    let (status, message) = health(&invalidation(None));
    assert_eq!(status, "Progressing");
    assert!(message.contains("Waiting for the operator"), "{message}");

    let (status, _) = health(&invalidation(Some(json!({}))));
    assert_eq!(status, "Progressing");
}

#[test]
fn pending_queued_and_in_progress_are_progressing_with_the_operator_message() {
    for (phase, text) in [
        ("Pending", "Submitting to CloudFront"),
        (
            "Queued",
            "Waiting for an in-progress slot: 15 wildcard paths in progress",
        ),
        ("InProgress", "CloudFront is invalidating (I2J0I21PCUYOIK)"),
    ] {
        assert_eq!(
            health(&with_phase(phase, Some(text))),
            ("Progressing".to_owned(), text.to_owned()),
            "phase {phase}"
        );
    }
    let (status, message) = health(&with_phase("InProgress", None));
    assert_eq!(status, "Progressing");
    assert!(message.contains("InProgress"), "{message}");
}

#[test]
fn completed_is_healthy() {
    let mut obj = with_phase("Completed", Some("Invalidation I2J0I21PCUYOIK completed"));
    obj["status"]["conditions"] = json!([
        condition(
            "Ready",
            "True",
            "Completed",
            "Invalidation I2J0I21PCUYOIK completed"
        ),
        condition(
            "Completed",
            "True",
            "Completed",
            "Invalidation I2J0I21PCUYOIK completed"
        ),
        condition("Reconciling", "False", "Completed", ""),
    ]);
    assert_eq!(
        health(&obj),
        (
            "Healthy".to_owned(),
            "Invalidation I2J0I21PCUYOIK completed".to_owned()
        )
    );
    assert_eq!(health(&with_phase("Completed", None)).0, "Healthy");
}

#[test]
fn failed_is_degraded_with_the_reason() {
    let text =
        "CloudFront answered NoSuchDistribution: the distribution EXAMPLEDIST01 does not exist";
    assert_eq!(
        health(&with_phase("Failed", Some(text))),
        ("Degraded".to_owned(), text.to_owned())
    );

    // Without status.message, the Failed condition's message.
    let mut obj = with_phase("Failed", None);
    obj["status"]["conditions"] = json!([
        condition("Failed", "True", "Timeout", "Not completed within 900s"),
        condition("Stalled", "True", "Timeout", "Not completed within 900s"),
    ]);
    assert_eq!(
        health(&obj),
        (
            "Degraded".to_owned(),
            "Not completed within 900s".to_owned()
        )
    );
    assert_eq!(health(&with_phase("Failed", None)).0, "Degraded");
}

#[test]
fn an_unknown_phase_is_progressing_never_unknown() {
    // Argo CD fails a hook whose health is Unknown; a phase added later must not do that.
    let (status, message) = health(&with_phase("Paused", None));
    assert_eq!(status, "Progressing");
    assert!(message.contains("Paused"), "{message}");
    assert_eq!(
        health(&with_phase("Paused", Some("Paused by an administrator"))),
        (
            "Progressing".to_owned(),
            "Paused by an administrator".to_owned()
        )
    );
}

#[test]
fn a_status_for_an_older_generation_is_progressing() {
    let mut obj = with_phase("Completed", Some("done"));
    obj["metadata"]["generation"] = json!(2);
    let (status, message) = health(&obj);
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 2"), "{message}");
}

#[test]
fn argocd_cm_embeds_health_lua_unchanged() {
    let cm: Json =
        serde_norway::from_str(&read("examples/argocd/argocd-cm.yaml")).expect("argocd-cm is YAML");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let embedded = cm["data"][HEALTH_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("argocd-cm.yaml has no data.{HEALTH_KEY}"));
    assert!(
        embedded == read("examples/argocd/health.lua"),
        "the health check embedded in examples/argocd/argocd-cm.yaml differs from examples/argocd/health.lua"
    );
}
