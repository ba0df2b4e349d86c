//! The CallerReference the CLI sends: CloudFront's idempotency key.
//!
//! The rule (documented in `docs/cli.md`), first match wins:
//! 1. `--caller-reference REF`, else the manifest's `spec.callerReference`: sent as written.
//! 2. `--idempotency-key KEY`: `cfinv-` + SHA-256 (hex) of the distribution id, the key and the
//!    set of submitted paths (normalized, deduplicated, covered paths removed, order ignored).
//!    The same pipeline run retried sends the same reference, and CloudFront answers with the
//!    invalidation it already created: nothing new, nothing billed twice. A new run (a new key)
//!    or other paths make a new invalidation.
//! 3. Neither: `cfinv-run-` + a random UUID, new for every run (retries inside one run reuse
//!    it). Without a key, a stable hash of distribution and paths alone would make tomorrow's
//!    deploy of the same paths return today's invalidation and invalidate nothing: a silently
//!    stale cache is worse than paying USD 0.005 per path twice for a retried step.
//!
//! Order is ignored because it changes nothing about what is invalidated; the CLI also sends
//! the paths sorted, so two runs with the same key send byte-identical batches.

use sha2::{Digest, Sha256};

/// Prefix of every caller reference the CLI makes up (at most 74 characters in all, under
/// CloudFront's 128).
pub const CALLER_REFERENCE_PREFIX: &str = "cfinv-";

/// Version tag hashed first, so a future change of the rule cannot collide with this one.
const DOMAIN: &str = "cloudfront-invalidation-operator/cli/caller-reference/v1";

/// Where the caller reference came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--caller-reference`.
    Flag,
    /// The manifest's `spec.callerReference`.
    Manifest,
    /// Hashed with `--idempotency-key`.
    IdempotencyKey,
    /// Random, new for this run.
    PerRun,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Manifest => "manifest",
            Source::IdempotencyKey => "idempotencyKey",
            Source::PerRun => "perRun",
        }
    }
}

/// `cfinv-` + SHA-256 hex of the distribution id, the key and the sorted, distinct paths.
/// Every field is length-prefixed, so no two different inputs hash the same bytes.
pub fn keyed_caller_reference(distribution_id: &str, paths: &[String], key: &str) -> String {
    let mut sorted: Vec<&str> = paths.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut hash = Sha256::new();
    field(&mut hash, DOMAIN.as_bytes());
    field(&mut hash, distribution_id.as_bytes());
    field(&mut hash, key.as_bytes());
    hash.update((sorted.len() as u64).to_be_bytes());
    for path in sorted {
        field(&mut hash, path.as_bytes());
    }
    format!("{CALLER_REFERENCE_PREFIX}{:x}", hash.finalize())
}

/// `cfinv-run-` + a random UUID.
pub fn per_run_caller_reference() -> String {
    format!(
        "{CALLER_REFERENCE_PREFIX}run-{}",
        uuid::Uuid::new_v4().simple()
    )
}

fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfinv_api::crd::MAX_CALLER_REFERENCE_LEN;

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pinned_value() {
        // Pinned: changing the rule breaks idempotency for a pipeline retried across an upgrade.
        assert_eq!(
            keyed_caller_reference("E2EXAMPLE", &paths(&["/index.html", "/img/*"]), "1234"),
            "cfinv-6a5b083f3d181358d006328c1f4df9641b272ba346b78b6fa8a1e664b7a86e1c"
        );
    }

    #[test]
    fn order_and_repetition_do_not_matter() {
        let a = keyed_caller_reference("E2EXAMPLE", &paths(&["/a", "/b", "/c"]), "k");
        let b = keyed_caller_reference("E2EXAMPLE", &paths(&["/c", "/a", "/b", "/a"]), "k");
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_matters() {
        let base = keyed_caller_reference("E2EXAMPLE", &paths(&["/a", "/b"]), "k");
        assert_ne!(
            base,
            keyed_caller_reference("E3EXAMPLE", &paths(&["/a", "/b"]), "k")
        );
        assert_ne!(
            base,
            keyed_caller_reference("E2EXAMPLE", &paths(&["/a", "/b"]), "k2")
        );
        assert_ne!(
            base,
            keyed_caller_reference("E2EXAMPLE", &paths(&["/a"]), "k")
        );
        assert_ne!(
            base,
            keyed_caller_reference("E2EXAMPLE", &paths(&["/a", "/b", "/c"]), "k")
        );
        assert_ne!(
            base,
            keyed_caller_reference("E2EXAMPLE", &paths(&["/A", "/b"]), "k")
        );
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // Without length prefixes these two would hash the same bytes.
        assert_ne!(
            keyed_caller_reference("E2", &paths(&["/ab"]), "k"),
            keyed_caller_reference("E2", &paths(&["/a", "b"]), "k")
        );
        assert_ne!(
            keyed_caller_reference("E2", &paths(&["/a"]), "kE"),
            keyed_caller_reference("E2k", &paths(&["/a"]), "E")
        );
        assert_ne!(
            keyed_caller_reference("E2", &paths(&["/a"]), ""),
            keyed_caller_reference("E2", &paths(&["/a", ""]), "")
        );
    }

    #[test]
    fn shape_and_length() {
        let r = keyed_caller_reference("E2EXAMPLE", &paths(&["/*"]), "pipeline-1");
        assert!(r.starts_with(CALLER_REFERENCE_PREFIX));
        let hex = &r[CALLER_REFERENCE_PREFIX.len()..];
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(r.len() <= MAX_CALLER_REFERENCE_LEN);
        // A very long key still gives a reference CloudFront accepts.
        let long = keyed_caller_reference("E2EXAMPLE", &paths(&["/*"]), &"k".repeat(10_000));
        assert_eq!(long.len(), r.len());
    }

    #[test]
    fn per_run_references_differ() {
        let a = per_run_caller_reference();
        let b = per_run_caller_reference();
        assert_ne!(a, b);
        assert!(a.starts_with("cfinv-run-"));
        assert!(a.len() <= MAX_CALLER_REFERENCE_LEN);
    }
}
