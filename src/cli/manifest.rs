//! `invalidate -f manifest.yaml`: the same CloudFrontInvalidation manifest works with and
//! without a cluster.
//!
//! The file may hold several YAML documents (as `kubectl apply -f` takes them); exactly one must
//! be a `CloudFrontInvalidation` of this API group, the others are skipped with a note. The spec
//! is checked as the API server would check it (unknown fields, id pattern, caller reference
//! length, `timeoutSeconds` range), so a manifest that works here also applies in a cluster.

use std::time::Duration;

use kube::Resource;
use serde::Deserialize;
use serde_norway::Value;

use super::{InputError, validate_distribution_id};
use crate::crd::{
    CloudFrontInvalidation, CloudFrontInvalidationSpec, MAX_CALLER_REFERENCE_LEN,
    MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS,
};

/// The fields of `spec`; anything else is a typo the API server would reject.
const SPEC_FIELDS: [&str; 4] = [
    "distributionId",
    "paths",
    "callerReference",
    "timeoutSeconds",
];

/// What the CLI takes from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestRequest {
    /// `metadata.name`, for messages.
    pub name: Option<String>,
    pub distribution_id: String,
    /// The paths as written (normalized later, like the operator does).
    pub paths: Vec<String>,
    pub caller_reference: Option<String>,
    pub timeout: Duration,
}

/// Reads a manifest from a file, or from stdin when `path` is `-`.
pub fn load(path: &str) -> Result<ManifestRequest, InputError> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| InputError::new(format!("cannot read the manifest from stdin: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("cannot read manifest {path}: {e}")))?
    };
    parse(&text, path)
}

/// Parses the text of a manifest; `source` names it in messages.
pub fn parse(text: &str, source: &str) -> Result<ManifestRequest, InputError> {
    let api_version = CloudFrontInvalidation::api_version(&()).into_owned();
    let kind = CloudFrontInvalidation::kind(&()).into_owned();
    let mut found = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| {
            InputError::new(format!(
                "{source}: document {}: not valid YAML: {e}",
                index + 1
            ))
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        let doc_kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let doc_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if doc_kind == kind && doc_version == api_version {
            found.push((index + 1, value));
        } else if doc_kind == kind {
            return Err(InputError::new(format!(
                "{source}: document {}: apiVersion {doc_version:?} is not supported, expected {api_version:?}",
                index + 1
            )));
        } else {
            eprintln!(
                "note: {source}: skipping document {} (kind {doc_kind:?}, not {kind})",
                index + 1
            );
        }
    }
    let (index, value) = match found.len() {
        0 => {
            return Err(InputError::new(format!(
                "{source}: no {kind} (apiVersion {api_version}) found"
            )));
        }
        1 => found.pop().expect("one"),
        n => {
            return Err(InputError::new(format!(
                "{source}: {n} {kind} documents found; pass one manifest per invalidation"
            )));
        }
    };
    let at = |msg: String| InputError::new(format!("{source}: document {index}: {msg}"));
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let spec_value = value
        .get("spec")
        .cloned()
        .ok_or_else(|| at("spec is missing".into()))?;
    let Some(mapping) = spec_value.as_mapping() else {
        return Err(at("spec must be a mapping".into()));
    };
    for key in mapping.keys() {
        let key = key.as_str().unwrap_or("");
        if !SPEC_FIELDS.contains(&key) {
            return Err(at(format!(
                "unknown field spec.{key} (known: {})",
                SPEC_FIELDS.join(", ")
            )));
        }
    }
    let spec: CloudFrontInvalidationSpec =
        serde_norway::from_value(spec_value).map_err(|e| at(format!("spec: {e}")))?;

    validate_distribution_id(&spec.distribution_id)
        .map_err(|e| at(format!("spec.distributionId: {e}")))?;
    if let Some(reference) = &spec.caller_reference {
        validate_caller_reference(reference)
            .map_err(|e| at(format!("spec.callerReference: {e}")))?;
    }
    if !(MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&spec.timeout_seconds) {
        return Err(at(format!(
            "spec.timeoutSeconds must be between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS}, got {}",
            spec.timeout_seconds
        )));
    }
    Ok(ManifestRequest {
        name,
        distribution_id: spec.distribution_id,
        paths: spec.paths.into_iter().map(|p| p.0).collect(),
        caller_reference: spec.caller_reference,
        timeout: Duration::from_secs(spec.timeout_seconds.into()),
    })
}

/// A caller reference CloudFront accepts: 1 to 128 characters.
pub fn validate_caller_reference(reference: &str) -> Result<(), InputError> {
    let len = reference.chars().count();
    if len == 0 {
        return Err(InputError::new("the caller reference must not be empty"));
    }
    if len > MAX_CALLER_REFERENCE_LEN {
        return Err(InputError::new(format!(
            "a caller reference may be at most {MAX_CALLER_REFERENCE_LEN} characters, this one is {len}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        assert_eq!(m.distribution_id, "E2EXAMPLE");
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
        let text =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n{BASIC}---\n");
        assert_eq!(parse(&text, "m.yaml").unwrap().distribution_id, "E2EXAMPLE");
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
}
