//! The checked-in CRD matches the Rust types, and its CEL rules do what their messages say.
//! CEL is evaluated with kube's client-side CEL validator against the checked-in YAML, because
//! the Kubernetes 1.20 API server used by the end-to-end tests drops CEL rules.

use serde_json::{Value, json};

use super::*;

const CHECKED_IN: &str =
    include_str!("../../../../crds/cloudfront.invalidation.io_cloudfrontinvalidations.yaml");

#[test]
fn checked_in_crd_matches_the_rust_types() {
    assert!(
        crd_yaml() == CHECKED_IN,
        "crds/ is out of date: run `cargo run -- crd > crds/cloudfront.invalidation.io_cloudfrontinvalidations.yaml`"
    );
}

fn schema() -> Value {
    let crd: Value = serde_norway::from_str(CHECKED_IN).expect("CRD YAML parses");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn object(paths: &[&str]) -> Value {
    json!({
        "apiVersion": "cloudfront.invalidation.io/v1alpha1",
        "kind": "CloudFrontInvalidation",
        "metadata": {"name": "site", "namespace": "web"},
        "spec": {"distributionId": "E2EXAMPLE", "paths": paths, "timeoutSeconds": 900},
    })
}

fn cel_errors(new: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&schema(), new, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn spec_cannot_change_after_creation() {
    let old = object(&["/index.html"]);
    let new = object(&["/index.html", "/app.js"]);
    let errors = cel_errors(&new, Some(&old));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("create a new CloudFrontInvalidation"),
        "{errors:?}"
    );
}

#[test]
fn unchanged_spec_and_status_updates_pass() {
    let old = object(&["/index.html"]);
    let mut new = old.clone();
    new["status"] = json!({"phase": "InProgress"});
    new["metadata"]["labels"] = json!({"team": "web"});
    assert_eq!(cel_errors(&new, Some(&old)), Vec::<String>::new());
}

#[test]
fn wildcard_only_as_last_character() {
    for ok in ["/*", "/images/*", "/app.js*", "/index.html", "images/a.jpg"] {
        assert_eq!(
            cel_errors(&object(&[ok]), None),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    for bad in ["/assets/app.*.js", "*/x", "/a**"] {
        let errors = cel_errors(&object(&["/ok", bad]), None);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(errors[0].contains("last character"), "{errors:?}");
    }
}

#[test]
fn caller_reference_defaults_to_the_uid() {
    let mut obj = CloudFrontInvalidation::new(
        "site",
        CloudFrontInvalidationSpec {
            distribution_id: "E2EXAMPLE".into(),
            paths: vec!["/index.html".into()],
            caller_reference: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            ttl_seconds_after_finished: None,
        },
    );
    obj.metadata.uid = Some("0b8f6c8e-uid".into());
    assert_eq!(obj.caller_reference().as_deref(), Some("0b8f6c8e-uid"));
    obj.spec.caller_reference = Some("deploy-42".into());
    assert_eq!(obj.caller_reference().as_deref(), Some("deploy-42"));
}

#[test]
fn timeout_defaults_to_900_when_omitted() {
    let spec: CloudFrontInvalidationSpec =
        serde_json::from_value(json!({"distributionId": "E2EXAMPLE", "paths": ["/a"]})).unwrap();
    assert_eq!(spec.timeout_seconds, 900);
    assert_eq!(
        schema()["properties"]["spec"]["properties"]["timeoutSeconds"]["default"],
        900
    );
}
