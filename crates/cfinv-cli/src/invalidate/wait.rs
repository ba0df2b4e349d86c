//! Submit (waiting for a slot, retrying transient errors), then poll until done or out of
//! time.

use std::time::Instant;

use super::args::Tuning;
use super::plan::Plan;
use super::{Outcome, Stage};
use crate::CALL_GRACE;
use crate::output;
use crate::progress::{Progress, format_duration};
use cfinv_cloudfront::polling::{CompletionModel, Kind};
use cfinv_cloudfront::{
    CloudFront, CloudFrontError, Disposition, Invalidation, classify, create_operation,
    get_operation,
};

/// The state machine: submit (waiting for a slot, retrying), then poll until done.
pub(super) async fn run(
    cf: &dyn CloudFront,
    plan: &Plan,
    tuning: &Tuning,
    progress: &Progress,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let dist = &plan.distribution_id;
    let target = &plan.target;
    let create_op = create_operation(target).as_str();
    let get_op = get_operation(target).as_str();
    let dropped = match plan.normalized.dropped.len() {
        0 => String::new(),
        n => format!(", {n} duplicate or covered path(s) dropped"),
    };
    progress.line(format!(
        "submitting {} path(s) to {target}{dropped} (caller reference {})",
        plan.normalized.billed(),
        plan.caller_reference
    ));
    progress.waiting("submitting");

    let mut attempt = 0u32;
    let mut queued = false;
    let submitted = loop {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(CALL_GRACE);
        let create = cf.create_for(target, &plan.caller_reference, &plan.normalized.paths);
        let err = match tokio::time::timeout(bound, create).await {
            Ok(Ok(invalidation)) => break invalidation,
            Ok(Err(err)) => err,
            Err(_) => {
                return Outcome::TimedOut {
                    stage: Stage::Submitting,
                    invalidation: None,
                    last_error: Some(CloudFrontError::timeout(format!(
                        "{create_op} did not answer before the timeout"
                    ))),
                };
            }
        };
        let disposition = classify(&err);
        if let Disposition::Fail(reason) = disposition {
            return Outcome::Failed {
                reason,
                operation: create_op,
                error: err,
                invalidation: None,
            };
        }
        let now = Instant::now();
        if now >= deadline {
            let stage = if disposition == Disposition::Queue {
                Stage::WaitingForSlot
            } else {
                Stage::Submitting
            };
            return Outcome::TimedOut {
                stage,
                invalidation: None,
                last_error: Some(err),
            };
        }
        let delay = tuning
            .retry
            .delay(attempt, &mut rand::rng())
            .min(deadline - now);
        attempt = attempt.saturating_add(1);
        match disposition {
            Disposition::Queue if !queued => {
                queued = true;
                progress.line(format!(
                    "{target} has too many invalidations in progress (CloudFront allows 15 \
                     wildcard paths and 3,000 other paths in progress at once); waiting for a \
                     slot, up to {} more",
                    format_duration(deadline - now)
                ));
                progress.waiting(format!("waiting for an in-progress slot on {dist}"));
            }
            Disposition::Queue => {}
            _ => progress.line(format!(
                "{create_op} failed, retrying in {}: {err}",
                format_duration(delay)
            )),
        }
        progress.sleep(delay).await;
    };

    let id = submitted.id.clone();
    let status = output::status_str(&submitted.status).to_owned();
    if submitted.status.is_completed() {
        // CloudFront never creates an invalidation that is done at once: this is the one an
        // earlier run created with the same caller reference.
        let created = submitted
            .create_time
            .map_or_else(String::new, |t| format!(" at {t:.0}"));
        progress.line(format!(
            "invalidation {id} {status}: CloudFront returned the invalidation created{created} \
             with this caller reference (nothing new is billed)"
        ));
        return Outcome::Completed(submitted);
    }
    progress.line(format!(
        "invalidation {id} {status} ({} path(s))",
        plan.normalized.billed()
    ));
    if !plan.wait {
        return Outcome::Submitted(submitted);
    }

    progress.waiting(format!("waiting for invalidation {id} to complete"));
    let submitted_at = Instant::now();
    let mut current = submitted;
    let mut retries = 0u32;
    let mut last_error;
    // A one-shot process has seen no completions: the engine's prior window (CloudFront's
    // documented times) shapes the schedule; one invalidation, so no batched List.
    let window = CompletionModel::new(tuning.poll.prior_median)
        .window_kind(dist, Kind::of(&plan.normalized.paths));
    loop {
        let now = Instant::now();
        let delay = if retries == 0 {
            tuning.poll.next_poll(now - submitted_at, window, 1)
        } else {
            tuning.retry.delay(retries - 1, &mut rand::rng())
        };
        progress
            .sleep(delay.min(deadline.saturating_duration_since(now)))
            .await;
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(CALL_GRACE);
        match tokio::time::timeout(bound, cf.get_for(target, &id)).await {
            Ok(Ok(polled)) => {
                retries = 0;
                last_error = None;
                if polled.status != current.status {
                    let status = output::status_str(&polled.status).to_owned();
                    let after = format_duration(submitted_at.elapsed());
                    progress.line(format!("invalidation {id} {status} after {after}"));
                }
                current = Invalidation {
                    paths: current.paths,
                    ..polled
                };
                if current.status.is_completed() {
                    return Outcome::Completed(current);
                }
            }
            Ok(Err(err)) => match classify(&err) {
                Disposition::Fail(reason) => {
                    return Outcome::Failed {
                        reason,
                        operation: get_op,
                        error: err,
                        invalidation: Some(current),
                    };
                }
                Disposition::Queue | Disposition::Retry => {
                    retries = retries.saturating_add(1);
                    progress.line(format!("{get_op} failed, will retry: {err}"));
                    last_error = Some(err);
                }
            },
            Err(_) => {
                last_error = Some(CloudFrontError::timeout(format!(
                    "{get_op} did not answer before the timeout"
                )));
            }
        }
        if Instant::now() >= deadline {
            return Outcome::TimedOut {
                stage: Stage::InProgress,
                invalidation: Some(current),
                last_error,
            };
        }
    }
}
