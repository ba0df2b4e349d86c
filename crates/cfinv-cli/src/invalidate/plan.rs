//! From the flags or a manifest to what will be sent: checked, normalised, with its
//! CallerReference.

use std::time::Duration;

use super::InvalidateArgs;
use crate::caller_reference::{Source, keyed_caller_reference, per_run_caller_reference};
use crate::manifest::{self, validate_caller_reference};
use crate::{InputError, target_from_flags};
use cfinv_api::crd::{DEFAULT_TIMEOUT_SECONDS, Target};
use cfinv_api::paths::{self, NormalizedPaths, PathError, PathErrors};

/// What to do, once the input is checked.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// The distribution or the distribution tenant.
    pub(super) target: Target,
    /// The target's id (a distribution id, or a tenant id).
    pub(super) distribution_id: String,
    /// The paths to send, sorted (so two runs send byte-identical batches).
    pub(super) normalized: NormalizedPaths,
    pub(super) caller_reference: String,
    pub(super) reference_source: Source,
    pub(super) wait: bool,
    pub(super) timeout: Duration,
}

impl Plan {
    pub(super) fn from_args(args: &InvalidateArgs) -> Result<Self, InputError> {
        let (target, raw_paths, manifest_reference, manifest_timeout) = match &args.filename {
            Some(file) => {
                let m = manifest::load(file)?;
                (m.target, m.paths, m.caller_reference, Some(m.timeout))
            }
            None => {
                let target = target_from_flags(
                    args.distribution_id.as_deref(),
                    args.distribution_tenant_id.as_deref(),
                )?;
                // `--tag x` is `--path '#x'`, after the paths.
                let tags = args.tags.iter().map(|t| {
                    if t.starts_with('#') {
                        t.clone()
                    } else {
                        format!("#{t}")
                    }
                });
                (
                    target,
                    args.paths.iter().cloned().chain(tags).collect(),
                    None,
                    None,
                )
            }
        };
        let distribution_id = target.id().to_owned();
        let mut normalized = paths::normalize(&raw_paths)
            .map_err(|e| path_errors(&e, &raw_paths, args.filename.is_some()))?;
        normalized.paths.sort_unstable();

        let explicit = match (&args.caller_reference, manifest_reference) {
            (Some(r), _) => Some((r.clone(), Source::Flag)),
            (None, Some(r)) => Some((r, Source::Manifest)),
            (None, None) => None,
        };
        let (caller_reference, reference_source) = match (explicit, &args.idempotency_key) {
            (Some((_, Source::Manifest)), Some(_)) => {
                return Err(InputError::new(
                    "--idempotency-key has no effect: the manifest sets spec.callerReference, \
                     which is sent as written; remove one of them",
                ));
            }
            (Some((reference, source)), _) => {
                validate_caller_reference(&reference)
                    .map_err(|e| InputError::new(format!("--caller-reference: {e}")))?;
                (reference, source)
            }
            (None, Some(key)) if key.trim().is_empty() => {
                return Err(InputError::new(
                    "--idempotency-key is empty: is the variable you pass set? \
                     (an empty key would make every run share one caller reference)",
                ));
            }
            (None, Some(key)) => (
                keyed_caller_reference(&distribution_id, &normalized.paths, key),
                Source::IdempotencyKey,
            ),
            (None, None) => (per_run_caller_reference(), Source::PerRun),
        };

        let timeout = args
            .timeout
            .or(manifest_timeout)
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_SECONDS.into()));
        if timeout.is_zero() {
            return Err(InputError::new("--timeout must be more than zero"));
        }
        Ok(Self {
            target,
            distribution_id,
            normalized,
            caller_reference,
            reference_source,
            wait: args.wait,
            timeout,
        })
    }
}

/// The path engine's errors, worded for where the paths came from: a manifest keeps the
/// engine's `spec.paths[i]`; flags name the path (1-based) as given.
pub(super) fn path_errors(errors: &PathErrors, raw: &[String], from_manifest: bool) -> InputError {
    if from_manifest {
        return InputError::new(errors.to_string());
    }
    let messages: Vec<String> = errors
        .0
        .iter()
        .map(|e| {
            let index = match e {
                PathError::EmptyPath { index }
                | PathError::WildcardNotLast { index, .. }
                | PathError::TooLong { index, .. }
                | PathError::EmptyTag { index }
                | PathError::TagTooLong { index, .. }
                | PathError::TagWildcard { index, .. }
                | PathError::TagCharacter { index, .. } => Some(*index),
                _ => None,
            };
            let text = e.to_string();
            match (index, text.split_once(": ")) {
                (Some(i), Some((_, rule))) => {
                    // The engine's message may end with the path; it is named first here.
                    let rule = rule
                        .strip_suffix(&format!(": {:?}", raw[i]))
                        .unwrap_or(rule);
                    format!("--path {:?}: {rule}", raw[i])
                }
                _ => text.replacen("spec.paths", "--path", 1),
            }
        })
        .collect();
    InputError::new(messages.join("; "))
}
