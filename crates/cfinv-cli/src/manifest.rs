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

use super::{InputError, validate_distribution_id, validate_distribution_tenant_id};
use cfinv_api::crd::{
    CloudFrontInvalidation, CloudFrontInvalidationSpec, MAX_CALLER_REFERENCE_LEN,
    MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, Target,
};

/// The fields of `spec`; anything else is a typo the API server would reject.
const SPEC_FIELDS: [&str; 5] = [
    "distributionId",
    "distributionTenantId",
    "paths",
    "callerReference",
    "timeoutSeconds",
];

/// What the CLI takes from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestRequest {
    /// `metadata.name`, for messages.
    pub name: Option<String>,
    /// The distribution or distribution tenant (exactly one of the two ids).
    pub target: Target,
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

    let target = spec.target().map_err(|e| at(e.to_string()))?;
    match &target {
        Target::Distribution(id) => {
            validate_distribution_id(id).map_err(|e| at(format!("spec.distributionId: {e}")))?
        }
        Target::Tenant(id) => validate_distribution_tenant_id(id)
            .map_err(|e| at(format!("spec.distributionTenantId: {e}")))?,
    }
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
        target,
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
mod tests;
