//! Reading CloudFrontInvalidation manifests as `kubectl apply` would.

use super::*;

const BASIC: &str = r#"
apiVersion: cloudfront.invalidation.io/v1alpha1
kind: CloudFrontInvalidation
metadata:
  name: deploy-42
spec:
  distributionId: E2EXAMPLE
  paths:
    - /index.html
    - "/static/*"
"#;

#[test]
fn parses_a_manifest() {
    let m = parse(BASIC, "m.yaml").unwrap();
    assert_eq!(m.name.as_deref(), Some("deploy-42"));
    assert_eq!(m.target, Target::Distribution("E2EXAMPLE".into()));
    assert_eq!(m.paths, ["/index.html", "/static/*"]);
    assert_eq!(m.caller_reference, None);
    assert_eq!(m.timeout, Duration::from_secs(900), "the CRD's default");
}

#[test]
fn takes_caller_reference_and_timeout() {
    let text = BASIC.replace(
        "  distributionId",
        "  callerReference: release-7\n  timeoutSeconds: 120\n  distributionId",
    );
    let m = parse(&text, "m.yaml").unwrap();
    assert_eq!(m.caller_reference.as_deref(), Some("release-7"));
    assert_eq!(m.timeout, Duration::from_secs(120));
}

#[test]
fn skips_other_documents() {
    let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n{BASIC}---\n");
    assert_eq!(parse(&text, "m.yaml").unwrap().target.id(), "E2EXAMPLE");
}

#[test]
fn rejects_what_the_api_server_rejects() {
    let cases = [
        (
            BASIC.replace("E2EXAMPLE", "e2example"),
            "spec.distributionId",
        ),
        (
            BASIC.replace("  paths:", "  path:"),
            "unknown field spec.path",
        ),
        (
            BASIC.replace("  distributionId", "  timeoutSeconds: 30\n  distributionId"),
            "spec.timeoutSeconds",
        ),
        (
            BASIC.replace(
                "  distributionId",
                &format!("  callerReference: {}\n  distributionId", "r".repeat(129)),
            ),
            "spec.callerReference",
        ),
        (
            BASIC.replace("v1alpha1", "v1"),
            "apiVersion \"cloudfront.invalidation.io/v1\" is not supported",
        ),
        (
            format!("{BASIC}---\n{BASIC}"),
            "2 CloudFrontInvalidation documents",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\n".to_owned(),
            "no CloudFrontInvalidation",
        ),
        ("spec: [".to_owned(), "not valid YAML"),
        (BASIC.replace("spec:", "spek:"), "spec is missing"),
        (
            BASIC.replace("    - /index.html\n    - \"/static/*\"\n", "    []\n"),
            "",
        ),
    ];
    for (text, expected) in cases {
        let result = parse(&text, "m.yaml");
        if expected.is_empty() {
            // An empty path list parses; the path engine rejects it later.
            assert!(result.unwrap().paths.is_empty());
            continue;
        }
        let err = result.expect_err(expected).to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
        assert!(err.starts_with("m.yaml"), "{err}");
    }
}

#[test]
fn caller_reference_length() {
    assert!(validate_caller_reference("x").is_ok());
    assert!(validate_caller_reference(&"x".repeat(128)).is_ok());
    assert!(validate_caller_reference(&"x".repeat(129)).is_err());
    assert!(validate_caller_reference("").is_err());
}
