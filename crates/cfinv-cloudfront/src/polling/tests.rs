//! The completion model, the poll schedule and the shared ListInvalidations board.

use super::*;

#[test]
fn prior_window_spans_seconds_to_minutes() {
    let w = CompletionModel::default().window("E1");
    assert!(
        w.early > Duration::from_secs(8) && w.early < Duration::from_secs(15),
        "{w:?}"
    );
    assert!(
        w.late > Duration::from_secs(120) && w.late < Duration::from_secs(200),
        "{w:?}"
    );
}

#[test]
fn the_window_learns_a_distributions_own_times_and_stays_per_distribution() {
    let m = CompletionModel::default();
    for i in 0..40 {
        m.observe("FAST", Duration::from_secs(20 + (i % 5)));
    }
    // Observed 20-24 s: the window narrows around them (the prior: ~12 s to ~3 minutes).
    let fast = m.window("FAST");
    assert!(
        fast.early > Duration::from_secs(14) && fast.early < Duration::from_secs(20),
        "{fast:?}"
    );
    assert!(
        fast.late > Duration::from_secs(24) && fast.late < Duration::from_secs(40),
        "{fast:?}"
    );
    assert_eq!(
        m.window("OTHER"),
        CompletionModel::default().window("OTHER")
    );
}

#[test]
fn adaptive_schedule_waits_for_the_window_then_polls_densely_then_backs_off() {
    let p = PollSettings::default();
    let w = Window {
        early: Duration::from_secs(30),
        late: Duration::from_secs(60),
    };
    assert_eq!(
        p.next_poll(Duration::ZERO, w, false),
        Duration::from_secs(30)
    );
    assert_eq!(
        p.next_poll(Duration::from_secs(30), w, false),
        Duration::from_secs(5)
    );
    assert_eq!(
        p.next_poll(Duration::from_secs(400), w, false),
        Duration::from_secs(30)
    );
}

#[test]
fn batching_polls_at_the_batch_interval() {
    let p = PollSettings::default();
    let w = Window {
        early: Duration::from_secs(30),
        late: Duration::from_secs(60),
    };
    assert_eq!(
        p.next_poll(Duration::from_secs(40), w, true),
        Duration::from_secs(2)
    );
}

#[test]
fn fixed_schedule_is_fixed() {
    let p = PollSettings::fixed(Duration::from_secs(20));
    let w = CompletionModel::default().window("E1");
    for t in [0, 5, 100, 1000] {
        assert_eq!(
            p.next_poll(Duration::from_secs(t), w, true),
            Duration::from_secs(20)
        );
    }
}

/// Over the prior's spread of completion times, the adaptive schedule makes no more calls
/// than the AWS CLI waiter (every 20 s) for an invalidation on its own.
#[test]
fn adaptive_makes_no_more_calls_than_the_cli_waiter_under_the_prior() {
    let p = PollSettings::default();
    let w = CompletionModel::default().window("E1");
    let calls = |schedule: &PollSettings, done: f64| {
        let (mut t, mut n) = (Duration::ZERO, 0);
        loop {
            t += schedule.next_poll(t, w, false);
            n += 1;
            if t.as_secs_f64() >= done {
                return n;
            }
        }
    };
    let waiter = PollSettings::fixed(Duration::from_secs(20));
    let (mut ours, mut theirs) = (0, 0);
    for done in (10..600).step_by(5) {
        ours += calls(&p, done as f64);
        theirs += calls(&waiter, done as f64);
    }
    assert!(ours <= theirs, "adaptive {ours} calls vs waiter {theirs}");
}

#[test]
fn tag_only_invalidations_have_their_own_faster_prior_and_history() {
    assert_eq!(Kind::of(&["#a", "#b"]), Kind::TagsOnly);
    assert_eq!(Kind::of(&["#a", "/index.html"]), Kind::Paths);
    assert_eq!(Kind::of::<&str>(&[]), Kind::Paths);
    let m = CompletionModel::default();
    let tags = m.window_kind("E1", Kind::TagsOnly);
    let paths = m.window_kind("E1", Kind::Paths);
    assert_eq!(paths, m.window("E1"));
    // AWS: tag invalidations complete in under 25 s at P95.
    assert!(
        tags.late > Duration::from_secs(20) && tags.late < Duration::from_secs(35),
        "{tags:?}"
    );
    assert!(tags.early < Duration::from_secs(3), "{tags:?}");
    // Slow path invalidations do not slow the tag schedule down, and the other way round.
    for _ in 0..20 {
        m.observe_kind("E1", Kind::Paths, Duration::from_secs(600));
    }
    assert_eq!(m.window_kind("E1", Kind::TagsOnly), tags);
    assert!(m.window_kind("E1", Kind::Paths).early > Duration::from_secs(60));
}
