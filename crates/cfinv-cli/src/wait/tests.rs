use std::collections::BTreeMap;

use cfinv_api::crd::CloudFrontInvalidation;
use serde_json::json;

use super::{Verdict, assess};

fn object(name: &str, generation: i64, status: serde_json::Value) -> CloudFrontInvalidation {
    serde_json::from_value(json!({
        "apiVersion": "cloudfront.invalidation.io/v1alpha1",
        "kind": "CloudFrontInvalidation",
        "metadata": {"name": name, "namespace": "web", "generation": generation},
        "spec": {"distributionId": "EDIST", "paths": ["/index.html"]},
        "status": status,
    }))
    .expect("a valid object")
}

fn seen(objects: &[CloudFrontInvalidation]) -> BTreeMap<String, CloudFrontInvalidation> {
    objects
        .iter()
        .map(|o| (o.metadata.name.clone().unwrap(), o.clone()))
        .collect()
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn failed_condition(reason: &str, message: &str) -> serde_json::Value {
    json!({"type": "Failed", "status": "True", "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

#[test]
fn completed_only_when_every_object_is() {
    let a = object(
        "a",
        1,
        json!({"phase": "Completed", "invalidationId": "I1", "observedGeneration": 1}),
    );
    let b = object(
        "b",
        1,
        json!({"phase": "InProgress", "invalidationId": "I2", "observedGeneration": 1}),
    );
    assert_eq!(
        assess(&names(&["a", "b"]), &seen(&[a.clone(), b])),
        Verdict::Waiting(vec![("b".into(), "InProgress (invalidation I2)".into())])
    );
    let b = object(
        "b",
        1,
        json!({"phase": "Completed", "invalidationId": "I2", "observedGeneration": 1}),
    );
    assert_eq!(
        assess(&names(&["a", "b"]), &seen(&[a, b])),
        Verdict::Completed(vec![
            ("a".into(), Some("I1".into())),
            ("b".into(), Some("I2".into()))
        ])
    );
}

#[test]
fn one_failed_object_decides_at_once_with_its_reason_and_message() {
    let a = object(
        "a",
        1,
        json!({"phase": "InProgress", "observedGeneration": 1}),
    );
    let b = object(
        "b",
        1,
        json!({"phase": "Failed", "observedGeneration": 1, "message": "CloudFront denied access to EDIST",
               "conditions": [failed_condition("AccessDenied", "denied (condition)")]}),
    );
    assert_eq!(
        assess(&names(&["a", "b"]), &seen(&[a, b])),
        Verdict::Failed {
            name: "b".into(),
            reason: "AccessDenied".into(),
            message: "CloudFront denied access to EDIST".into()
        }
    );
}

#[test]
fn failed_without_a_message_takes_the_conditions() {
    let b = object(
        "b",
        1,
        json!({"phase": "Failed", "observedGeneration": 1, "conditions": [failed_condition("Timeout", "gave up after 900 s")]}),
    );
    assert_eq!(
        assess(&names(&["b"]), &seen(&[b])),
        Verdict::Failed {
            name: "b".into(),
            reason: "Timeout".into(),
            message: "gave up after 900 s".into()
        }
    );
}

#[test]
fn a_status_about_an_older_generation_is_not_believed() {
    let a = object(
        "a",
        2,
        json!({"phase": "Completed", "observedGeneration": 1}),
    );
    assert_eq!(
        assess(&names(&["a"]), &seen(&[a])),
        Verdict::Waiting(vec![("a".into(), "waiting for the operator".into())])
    );
}

#[test]
fn no_status_yet_and_missing_objects_are_waited_for() {
    let a = object("a", 1, json!(null));
    assert_eq!(
        assess(&names(&["a", "b"]), &seen(&[a])),
        Verdict::Waiting(vec![
            ("a".into(), "waiting for the operator".into()),
            ("b".into(), "not found".into())
        ])
    );
}
