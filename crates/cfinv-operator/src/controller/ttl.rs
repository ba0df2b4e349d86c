//! `spec.ttlSecondsAfterFinished` (and the operator-wide `--ttl-after-finished`), as Jobs have
//! it: a finished object is deleted that long after it finished. Never an unfinished one, and
//! never one whose invalidation CloudFront still reports in progress (a timed-out one), so the
//! quota accounting keeps seeing it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::controller::Action,
};
use tracing::info;

use super::{Context, Error, conditions};
use cfinv_api::crd::{CloudFrontInvalidation, Phase};

/// What the TTL asks for one object now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No TTL, not finished, or CloudFront still works on it: nothing to do (a change to the
    /// object reconciles it again).
    Keep,
    /// Look again this much later.
    After(Duration),
    /// Its time is up.
    Delete,
}

/// The TTL that applies: the spec's, else the operator's default.
pub fn ttl(obj: &CloudFrontInvalidation, default: Option<Duration>) -> Option<Duration> {
    obj.spec
        .ttl_seconds_after_finished
        .map(|s| Duration::from_secs(s.into()))
        .or(default)
}

/// When the object finished: `status.completionTime`, else the moment its `Completed` or
/// `Failed` condition turned true.
pub fn finished_at(obj: &CloudFrontInvalidation) -> Option<Timestamp> {
    let status = obj.status.as_ref()?;
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .find(|c| {
                (c.type_ == conditions::COMPLETED || c.type_ == conditions::FAILED)
                    && c.status == "True"
            })
            .map(|c| c.last_transition_time.0)
    })
}

/// CloudFront still reports the invalidation in progress (a timed-out one).
pub fn cloudfront_running(obj: &CloudFrontInvalidation) -> bool {
    obj.status
        .as_ref()
        .and_then(|s| s.cloud_front_status.as_deref())
        .is_some_and(|s| s == "InProgress")
}

pub fn step(obj: &CloudFrontInvalidation, default: Option<Duration>, now: Timestamp) -> Step {
    let Some(ttl) = ttl(obj, default) else {
        return Step::Keep;
    };
    if !obj.phase().is_terminal() || cloudfront_running(obj) {
        return Step::Keep;
    }
    let Some(finished) = finished_at(obj) else {
        return Step::Keep;
    };
    let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX);
    let expires = finished.checked_add(ttl).unwrap_or(Timestamp::MAX);
    if now >= expires {
        Step::Delete
    } else {
        Step::After(expires.duration_since(now).unsigned_abs())
    }
}

/// Run the TTL for a finished object: delete it when its time is up, else look again then.
pub async fn after_finished(
    obj: &CloudFrontInvalidation,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, Error> {
    match step(obj, ctx.settings.ttl_after_finished, now) {
        Step::Keep => Ok(Action::await_change()),
        Step::After(delay) => Ok(Action::requeue(delay)),
        Step::Delete => delete(obj, ctx).await,
    }
}

async fn delete(obj: &CloudFrontInvalidation, ctx: &Context) -> Result<Action, Error> {
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<CloudFrontInvalidation> = Api::namespaced(ctx.client.clone(), &ns);
    // Only this object as it was seen: not a new one of the same name, and not one whose
    // status changed meanwhile (CloudFront may have been found still running).
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.uid(),
            resource_version: obj.resource_version(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => {
            let phase = obj.phase();
            info!(
                phase = phase.as_str(),
                ttl_seconds = ttl(obj, ctx.settings.ttl_after_finished)
                    .unwrap_or_default()
                    .as_secs(),
                "deleted the finished object: its time to live after finishing is up"
            );
            ctx.observability
                .metrics
                .record_ttl_deletion(phase.as_str());
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        // Changed since this copy (our own status write, a moment ago): look again with the
        // current one. A status change triggers no reconcile by itself, so ask for one.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Action::requeue(Duration::from_secs(1))),
        Err(e) => Err(Error::Delete(e)),
    }
}

/// Whether a finished object still needs reconciling, so the controller's cache must keep it:
/// a TTL to run, a timed-out invalidation CloudFront may still be running (the follow-up poll),
/// or a spec change not yet acknowledged. The others are left out of the cache (the
/// scheduler's index still counts them).
pub fn finished_needs_reconcile(obj: &CloudFrontInvalidation, default: Option<Duration>) -> bool {
    let status = obj.status.as_ref();
    let followed_up = obj.phase() == Phase::Failed
        && status.is_some_and(|s| {
            s.invalidation_id.is_some() && s.cloud_front_status.as_deref() != Some("Completed")
        });
    let spec_changed = obj.metadata.generation.is_some()
        && status.and_then(|s| s.observed_generation) != obj.metadata.generation;
    ttl(obj, default).is_some() || followed_up || spec_changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use cfinv_api::crd::{CloudFrontInvalidationSpec, CloudFrontInvalidationStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn object(phase: Phase, ttl: Option<u32>, finished: Option<i64>) -> CloudFrontInvalidation {
        let mut o = CloudFrontInvalidation::new(
            "site",
            CloudFrontInvalidationSpec {
                distribution_id: Some("E1".into()),
                distribution_tenant_id: None,
                paths: vec!["/a".into()],
                caller_reference: None,
                timeout_seconds: 900,
                ttl_seconds_after_finished: ttl,
            },
        );
        o.metadata.generation = Some(1);
        o.status = Some(CloudFrontInvalidationStatus {
            phase: Some(phase),
            invalidation_id: Some("I1".into()),
            completion_time: finished.map(|s| Time(at(s))),
            observed_generation: Some(1),
            ..Default::default()
        });
        o
    }

    #[test]
    fn counted_from_the_finish_time() {
        let o = object(Phase::Completed, Some(60), Some(0));
        assert_eq!(step(&o, None, at(20)), Step::After(Duration::from_secs(40)));
        assert_eq!(step(&o, None, at(60)), Step::Delete);
        assert_eq!(step(&o, None, at(600)), Step::Delete);
    }

    #[test]
    fn unfinished_objects_are_never_deleted() {
        for phase in [Phase::Pending, Phase::Queued, Phase::InProgress] {
            let o = object(phase, Some(0), Some(0));
            assert_eq!(step(&o, None, at(10_000)), Step::Keep, "{phase}");
        }
    }

    #[test]
    fn a_timed_out_invalidation_cloudfront_still_runs_is_kept() {
        let mut o = object(Phase::Failed, Some(0), Some(0));
        o.status.as_mut().unwrap().cloud_front_status = Some("InProgress".into());
        assert_eq!(step(&o, None, at(10_000)), Step::Keep);
        o.status.as_mut().unwrap().cloud_front_status = Some("Completed".into());
        assert_eq!(step(&o, None, at(10_000)), Step::Delete);
    }

    #[test]
    fn the_spec_wins_over_the_operator_default_which_applies_where_the_spec_is_silent() {
        let default = Some(Duration::from_secs(10));
        let silent = object(Phase::Completed, None, Some(0));
        assert_eq!(
            step(&silent, None, at(10_000)),
            Step::Keep,
            "off unless set"
        );
        assert_eq!(step(&silent, default, at(10)), Step::Delete);
        let longer = object(Phase::Completed, Some(3600), Some(0));
        assert_eq!(
            step(&longer, default, at(10)),
            Step::After(Duration::from_secs(3590))
        );
        let zero = object(Phase::Failed, Some(0), Some(0));
        assert_eq!(
            step(&zero, Some(Duration::from_secs(3600)), at(0)),
            Step::Delete
        );
    }

    #[test]
    fn without_a_completion_time_the_finished_condition_counts() {
        let mut o = object(Phase::Completed, Some(30), None);
        o.status.as_mut().unwrap().conditions = crate::controller::conditions::for_phase(
            Phase::Completed,
            "Completed",
            "done",
            Some(1),
            &[],
            at(100),
        );
        assert_eq!(
            step(&o, None, at(120)),
            Step::After(Duration::from_secs(10))
        );
    }

    #[test]
    fn finished_objects_leave_the_cache_unless_something_is_left_to_do() {
        let done = object(Phase::Completed, None, Some(0));
        assert!(!finished_needs_reconcile(&done, None));
        assert!(finished_needs_reconcile(
            &done,
            Some(Duration::from_secs(60))
        ));
        let with_ttl = object(Phase::Completed, Some(60), Some(0));
        assert!(finished_needs_reconcile(&with_ttl, None));
        let mut timed_out = object(Phase::Failed, None, Some(0));
        timed_out.status.as_mut().unwrap().cloud_front_status = Some("InProgress".into());
        assert!(finished_needs_reconcile(&timed_out, None));
        let mut edited = object(Phase::Completed, None, Some(0));
        edited.metadata.generation = Some(2);
        assert!(finished_needs_reconcile(&edited, None));
    }
}
