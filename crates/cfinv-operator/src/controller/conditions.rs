//! The conditions every tool reads: `Completed` and `Failed` as a Job has them (for
//! `kubectl wait --for=condition=Completed`), `Ready` (True exactly when Completed), and kstatus'
//! `Reconciling` / `Stalled` so Flux, Helm 4 and cli-utils see "in progress" while running,
//! "current" when done and "failed" when failed.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use cfinv_api::crd::Phase;

pub const COMPLETED: &str = "Completed";
pub const FAILED: &str = "Failed";
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// The full condition list for a phase. `reason` is a CamelCase word (the failure reason for
/// `Failed`), `message` the same words as `status.message`. A condition keeps its
/// `lastTransitionTime` when its status does not change, as the API conventions ask.
pub fn for_phase(
    phase: Phase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let (completed, failed, running) = match phase {
        Phase::Completed => (true, false, false),
        Phase::Failed => (false, true, false),
        Phase::Pending | Phase::Queued | Phase::InProgress => (false, false, true),
    };
    let cond = |type_: &str, status: bool| {
        let status = if status { "True" } else { "False" };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time,
        }
    };
    vec![
        cond(READY, completed),
        cond(COMPLETED, completed),
        cond(FAILED, failed),
        cond(RECONCILING, running),
        cond(STALLED, failed),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> &'a str {
        &conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
            .status
    }

    /// The kstatus rules (sigs.k8s.io/cli-utils/pkg/kstatus): Reconciling=True → InProgress,
    /// Stalled=True → Failed, Ready=False → InProgress, otherwise Current.
    fn kstatus(conditions: &[Condition]) -> &'static str {
        if status_of(conditions, RECONCILING) == "True" {
            "InProgress"
        } else if status_of(conditions, STALLED) == "True" {
            "Failed"
        } else if status_of(conditions, READY) == "False" {
            "InProgress"
        } else {
            "Current"
        }
    }

    #[test]
    fn running_phases_read_as_in_progress_everywhere() {
        for phase in [Phase::Pending, Phase::Queued, Phase::InProgress] {
            let c = for_phase(phase, phase.as_str(), "m", Some(1), &[], Timestamp::now());
            assert_eq!(kstatus(&c), "InProgress", "{phase}");
            assert_eq!(status_of(&c, COMPLETED), "False");
            assert_eq!(status_of(&c, FAILED), "False");
            assert_eq!(status_of(&c, READY), "False");
        }
    }

    #[test]
    fn completed_is_ready_and_current() {
        let c = for_phase(
            Phase::Completed,
            "Completed",
            "m",
            Some(1),
            &[],
            Timestamp::now(),
        );
        assert_eq!(kstatus(&c), "Current");
        assert_eq!(status_of(&c, COMPLETED), "True");
        assert_eq!(status_of(&c, READY), "True");
        assert_eq!(status_of(&c, FAILED), "False");
    }

    #[test]
    fn failed_is_stalled_and_not_ready() {
        let c = for_phase(
            Phase::Failed,
            "Timeout",
            "m",
            Some(1),
            &[],
            Timestamp::now(),
        );
        assert_eq!(kstatus(&c), "Failed");
        assert_eq!(status_of(&c, FAILED), "True");
        assert_eq!(status_of(&c, READY), "False");
        assert!(c.iter().all(|c| c.reason == "Timeout"));
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = for_phase(Phase::Pending, "Pending", "m", Some(1), &[], t0);
        let second = for_phase(Phase::InProgress, "InProgress", "m", Some(1), &first, t1);
        let ready = second.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.last_transition_time, Time(t0), "Ready stayed False");
        let third = for_phase(Phase::Completed, "Completed", "m", Some(1), &second, t1);
        let ready = third.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.last_transition_time, Time(t1), "Ready became True");
    }
}
