//! How a run is shown: the result on stdout (text or JSON) and its exit code.

use std::time::Duration;

use super::plan::Plan;
use super::{InvalidateArgs, Outcome, Stage};
use crate::caller_reference::Source;
use crate::cost::estimate_cost;
use crate::output::{self, ErrorReport, InvalidateReport};
use crate::progress::format_duration;
use crate::{Exit, InputError, NO_CREDENTIALS, OutputFormat};
use cfinv_cloudfront::{CloudFrontError, FailureReason};

pub(super) fn invalid_input(format: OutputFormat, args: &InvalidateArgs, err: &InputError) -> Exit {
    eprintln!("error: {err}");
    if format == OutputFormat::Json {
        let report = InvalidateReport {
            outcome: "invalidInput",
            exit_code: Exit::InvalidInput.code(),
            distribution_id: args.distribution_id.clone(),
            error: Some(ErrorReport {
                reason: "InvalidInput".into(),
                code: None,
                message: err.to_string(),
            }),
            ..Default::default()
        };
        output::emit(format, &report, output::invalidate_text);
    }
    Exit::InvalidInput
}

pub(super) fn no_credentials(format: OutputFormat, plan: &Plan, message: String) -> Exit {
    eprintln!("error: {message}");
    if format == OutputFormat::Json {
        let mut report = base_report(plan, "failed", Exit::Failed);
        report.error = Some(ErrorReport {
            reason: NO_CREDENTIALS.into(),
            code: None,
            message,
        });
        output::emit(format, &report, output::invalidate_text);
    }
    Exit::Failed
}

pub(super) fn base_report(plan: &Plan, outcome: &'static str, exit: Exit) -> InvalidateReport {
    InvalidateReport {
        outcome,
        exit_code: exit.code(),
        distribution_id: Some(plan.distribution_id.clone()),
        caller_reference: Some(plan.caller_reference.clone()),
        caller_reference_source: Some(plan.reference_source.as_str()),
        ..Default::default()
    }
    .with_paths(&plan.normalized)
}

pub(super) fn dry_run(format: OutputFormat, plan: &Plan, paths_this_month: Option<u64>) -> Exit {
    let mut report = base_report(plan, "dryRun", Exit::Success);
    if plan.reference_source == Source::PerRun {
        // A random reference now would not be the one a real run sends.
        report.caller_reference = None;
    }
    report.cost = Some(estimate_cost(plan.normalized.billed() as u64, paths_this_month).into());
    output::emit(format, &report, output::invalidate_text);
    Exit::Success
}

/// Prints the outcome and returns the exit code.
pub(super) fn finish(
    format: OutputFormat,
    plan: &Plan,
    outcome: Outcome,
    elapsed: Duration,
) -> Exit {
    let dist = &plan.distribution_id;
    let (name, exit, invalidation, error) = match outcome {
        Outcome::Completed(inv) => ("completed", Exit::Success, Some(inv), None),
        Outcome::Submitted(inv) => ("submitted", Exit::Success, Some(inv), None),
        Outcome::Failed {
            reason,
            operation,
            error,
            invalidation,
        } => {
            let message = failure_message(plan, reason, operation, &error);
            let report = ErrorReport {
                reason: reason.as_str().to_owned(),
                code: error.code.clone(),
                message,
            };
            ("failed", Exit::Failed, invalidation, Some(report))
        }
        Outcome::TimedOut {
            stage,
            invalidation,
            last_error,
        } => {
            let after = format_duration(plan.timeout);
            let last = last_error
                .as_ref()
                .map_or_else(String::new, |e| format!(" (last error: {e})"));
            let message = match (stage, &invalidation) {
                (Stage::InProgress, Some(inv)) => format!(
                    "timed out after {after}: invalidation {} is still {} (CloudFront will \
                     finish it; it cannot be cancelled); check later with `get \
                     --distribution-id {dist} --id {}`{last}",
                    inv.id,
                    output::status_str(&inv.status),
                    inv.id
                ),
                (Stage::WaitingForSlot, _) => format!(
                    "timed out after {after} waiting for an in-progress slot on distribution \
                     {dist}; nothing was submitted"
                ),
                _ => format!(
                    "timed out after {after} submitting the invalidation{last}; it may or may \
                     not have been created: running again with the same caller reference ({}) \
                     is safe",
                    plan.caller_reference
                ),
            };
            let report = ErrorReport {
                reason: FailureReason::Timeout.as_str().to_owned(),
                code: last_error.and_then(|e| e.code),
                message,
            };
            ("timedOut", Exit::TimedOut, invalidation, Some(report))
        }
    };
    let mut report = base_report(plan, name, exit);
    report.elapsed_seconds = Some((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    if let Some(inv) = &invalidation {
        report = report.with_invalidation(inv);
    }
    if let Some(error) = &error {
        eprintln!("error: {}", error.message);
    }
    report.error = error;
    // Text goes to stdout only when there is an invalidation to show; JSON always.
    if format == OutputFormat::Json || invalidation.is_some() {
        output::emit(format, &report, output::invalidate_text);
    }
    exit
}

pub(super) fn failure_message(
    plan: &Plan,
    reason: FailureReason,
    operation: &str,
    err: &CloudFrontError,
) -> String {
    let dist = &plan.distribution_id;
    let hint = match reason {
        FailureReason::DistributionTenantNotFound => format!(
            "distribution tenant {dist} does not exist, or belongs to another AWS account than \
             these credentials"
        ),
        FailureReason::AccessDenied if plan.target.is_tenant() => format!(
            "these credentials may not invalidate distribution tenant {dist}: grant \
             cloudfront:CreateInvalidationForDistributionTenant and \
             cloudfront:GetInvalidationForDistributionTenant on it"
        ),
        FailureReason::DistributionNotFound => format!(
            "distribution {dist} does not exist, or belongs to another AWS account than these \
             credentials"
        ),
        FailureReason::AccessDenied => format!(
            "these credentials may not invalidate distribution {dist}: grant \
             cloudfront:CreateInvalidation, cloudfront:GetInvalidation and \
             cloudfront:ListInvalidations on it"
        ),
        FailureReason::CallerReferenceConflict => format!(
            "caller reference {} was already used for other paths; use another \
             --caller-reference or --idempotency-key",
            plan.caller_reference
        ),
        FailureReason::InvalidationNotFound => {
            "CloudFront no longer knows the invalidation it returned".to_owned()
        }
        FailureReason::InvalidPaths => "CloudFront rejected the paths".to_owned(),
        _ => format!("CloudFront refused the request ({reason})"),
    };
    format!("{hint}: {operation}: {err}")
}
