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
        "crds/ is out of date: `cargo run -- crd` prints both CRDs (batches, `---`, invalidations): write the second to crds/cloudfront.invalidation.io_cloudfrontinvalidations.yaml"
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
            distribution_id: Some("E2EXAMPLE".into()),
            distribution_tenant_id: None,
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

fn tenant_object(paths: &[&str]) -> Value {
    let mut obj = object(paths);
    let spec = obj["spec"].as_object_mut().unwrap();
    spec.remove("distributionId");
    spec.insert(
        "distributionTenantId".into(),
        json!("dt_2yMvQgam3QkJo2z54FDl91dk1AB"),
    );
    obj
}

/// Whether `value` matches the `pattern` of the checked-in schema at `pointer`: what servers
/// that drop CEL still check (the `oneOf` is checked by the end-to-end tests' API server).
fn pattern_matches(pointer: &str, value: &str) -> bool {
    let pattern = schema()
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no pattern at {pointer}"))
        .to_owned();
    regex::Regex::new(&pattern)
        .expect("the pattern compiles")
        .is_match(value)
}

const ITEM_PATTERN: &str = "/properties/spec/properties/paths/items/pattern";
const TENANT_PATTERN: &str = "/properties/spec/properties/distributionTenantId/pattern";

#[test]
fn valid_tags_and_mixed_batches_pass() {
    let long = format!("#{}", "t".repeat(256));
    for paths in [
        vec!["#product:electronics"],
        vec![
            "#product:electronics",
            "#Product:Electronics",
            "/index.html",
        ],
        vec!["/images/*", "#brand:acme", "index.html"],
        vec![long.as_str()],
        vec!["#a!\"$%&'()+-./:;<=>?@[\\]^_`{|}~"],
    ] {
        let obj = object(&paths);
        assert_eq!(cel_errors(&obj, None), Vec::<String>::new(), "{paths:?}");
        for item in &paths {
            assert!(pattern_matches(ITEM_PATTERN, item), "{item}");
        }
    }
}

#[test]
fn each_tag_rule_is_checked_at_admission_with_its_message() {
    let long = format!("#{}", "t".repeat(257));
    for (bad, rule) in [
        ("#", "rule: tag-length"),
        ("#product:*", "rule: tag-no-wildcard"),
        ("#a,b", "rule: tag-characters"),
        ("#a b", "rule: tag-characters"),
        ("#caf\u{e9}", "rule: tag-characters"),
        (long.as_str(), "rule: tag-length"),
    ] {
        let obj = object(&["/ok", bad]);
        let errors = cel_errors(&obj, None);
        assert!(
            errors.iter().any(|e| e.contains(rule)),
            "{bad}: expected {rule} in {errors:?}"
        );
        assert!(
            !errors.iter().any(|e| e.contains("wildcard-last")),
            "a tag is not a path: {errors:?}"
        );
        assert!(
            !pattern_matches(ITEM_PATTERN, bad),
            "{bad}: the pattern refuses it too"
        );
    }
}

#[test]
fn exactly_one_target_is_required_at_admission() {
    let tenant = tenant_object(&["/index.html"]);
    assert_eq!(cel_errors(&tenant, None), Vec::<String>::new());
    assert_eq!(
        cel_errors(&object(&["/index.html"]), None),
        Vec::<String>::new()
    );

    let mut both = tenant.clone();
    both["spec"]["distributionId"] = json!("E2EXAMPLE");
    let mut neither = tenant.clone();
    neither["spec"]
        .as_object_mut()
        .unwrap()
        .remove("distributionTenantId");
    for obj in [both, neither] {
        let errors = cel_errors(&obj, None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("exactly one of spec.distributionId and spec.distributionTenantId"),
            "{errors:?}"
        );
    }
    let one_of = &schema()["properties"]["spec"]["oneOf"];
    assert_eq!(
        one_of,
        &json!([{"required": ["distributionId"]}, {"required": ["distributionTenantId"]}])
    );
}

#[test]
fn tenant_ids_follow_the_documented_format() {
    assert!(pattern_matches(
        TENANT_PATTERN,
        "dt_2yMvQgam3QkJo2z54FDl91dk1AB"
    ));
    for bad in ["E2EXAMPLE", "dt_", "dt-abc", "dt_abc/def"] {
        assert!(!pattern_matches(TENANT_PATTERN, bad), "{bad}");
    }
}

#[test]
fn the_spec_names_its_one_target() {
    let spec = |d: Option<&str>, t: Option<&str>| CloudFrontInvalidationSpec {
        distribution_id: d.map(Into::into),
        distribution_tenant_id: t.map(Into::into),
        paths: vec!["/a".into()],
        caller_reference: None,
        timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
        ttl_seconds_after_finished: None,
    };
    assert_eq!(
        spec(Some("E1"), None).target(),
        Ok(Target::Distribution("E1".into()))
    );
    assert_eq!(
        spec(None, Some("dt_x")).target().map(|t| t.label()),
        Ok("tenant/dt_x".to_owned())
    );
    let both = spec(Some("E1"), Some("dt_x")).target().unwrap_err();
    assert_eq!(both, TargetError::Both);
    assert!(both.to_string().contains("rule: one-target"));
    assert_eq!(spec(None, None).target(), Err(TargetError::Neither));
}

#[test]
fn kubectl_get_shows_one_target_column_and_paths_and_tags() {
    let crd: Value = serde_norway::from_str(CHECKED_IN).unwrap();
    let columns = &crd["spec"]["versions"][0]["additionalPrinterColumns"];
    let names: Vec<&str> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Target",
            "Phase",
            "Invalidation ID",
            "Paths",
            "Tags",
            "Billed",
            "Age"
        ]
    );
    assert_eq!(columns[0]["jsonPath"], ".status.target");
}
