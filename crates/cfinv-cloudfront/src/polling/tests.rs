//! The completion model, the poll schedule and the shared ListInvalidations board.

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The poll instants of `schedule` for one invalidation, with the model fixed at `window`, up to
/// `horizon` seconds (non-batched: one invalidation on its distribution).
fn poll_times(schedule: &PollSettings, window: Window, horizon: f64) -> Vec<f64> {
    let (mut t, mut out) = (Duration::ZERO, Vec::new());
    while t.as_secs_f64() < horizon {
        t += schedule.next_poll(t, window, 1);
        out.push(t.as_secs_f64());
    }
    out
}

/// Mean delay and mean calls of poll instants `polls` when completion times follow `truth`
/// (exact integrals, no sampling): delay = Σ∫(tᵢ - t) f dt over each interval, calls = Σ S(tᵢ₋₁).
fn cost(polls: &[f64], truth: LogNormal) -> (f64, f64) {
    let (mut delay, mut calls, mut prev) = (0.0, 0.0, 0.0);
    for &t in polls {
        calls += truth.survival(prev);
        let n = 200;
        let dt = (t - prev) / n as f64;
        delay += (0..n)
            .map(|j| {
                let s = prev + (j as f64 + 0.5) * dt;
                (t - s) * truth.pdf(s) * dt
            })
            .sum::<f64>();
        prev = t;
    }
    (delay, calls)
}

#[test]
fn the_physical_limit_matches_the_issue_s_figures() {
    // ½(∫√(f·S) dt)²: about 19 s·calls for log-normal(45 s, 0.5), 28 for (45 s, 0.8); it
    // scales with the median.
    let limit = |m, s| LogNormal::new(secs(m), s).physical_limit();
    assert!(
        (limit(45.0, 0.5) - 18.67).abs() < 0.1,
        "{}",
        limit(45.0, 0.5)
    );
    assert!(
        (limit(45.0, 0.8) - 28.29).abs() < 0.1,
        "{}",
        limit(45.0, 0.8)
    );
    assert!((limit(90.0, 0.5) / limit(45.0, 0.5) - 2.0).abs() < 1e-6);
}

#[test]
fn prior_window_spans_seconds_to_minutes() {
    let w = CompletionModel::default().window("E1");
    // log-normal(45 s, 0.8): 5th percentile 12 s, 99th 290 s.
    assert!(w.early > secs(10.0) && w.early < secs(14.0), "{w:?}");
    assert!(w.late > secs(250.0) && w.late < secs(330.0), "{w:?}");
    assert_eq!(w.median, secs(45.0));
}

#[test]
fn the_window_learns_a_distributions_own_times_and_stays_per_distribution() {
    let m = CompletionModel::default();
    for i in 0..40 {
        m.observe("FAST", secs(20.0 + (i % 5) as f64));
    }
    let fast = m.window("FAST");
    assert!(
        fast.median > secs(20.0) && fast.median < secs(24.0),
        "{fast:?}"
    );
    // Far narrower than the prior's 0.8: the schedule concentrates its calls.
    assert!(fast.sigma < 0.3, "{fast:?}");
    assert!(fast.early > secs(14.0), "{fast:?}");
    assert!(fast.late < secs(45.0), "{fast:?}");
    assert_eq!(
        m.window("OTHER"),
        CompletionModel::default().window("OTHER")
    );
}

#[test]
fn learning_follows_a_service_that_slows_down() {
    let m = CompletionModel::default();
    for _ in 0..50 {
        m.observe("E1", secs(45.0));
    }
    let before = m.window("E1");
    for _ in 0..30 {
        m.observe("E1", secs(90.0));
    }
    let after = m.window("E1");
    // Older observations fade: 30 slow ones move the median most of the way to 90 s.
    assert!(after.median > secs(75.0), "{before:?} -> {after:?}");
    assert!(after.early > before.early, "{before:?} -> {after:?}");
}

#[test]
fn kinds_learn_apart() {
    let m = CompletionModel::default();
    for _ in 0..30 {
        m.observe_kind("E1", Kind::Paths, secs(120.0));
    }
    assert!(m.window_kind("E1", Kind::Paths).median > secs(100.0));
    assert_eq!(m.window("E1"), m.window_kind("E1", Kind::Paths));
}

#[test]
fn first_poll_is_never_before_the_models_early_quantile() {
    let p = PollSettings::default();
    // With no history, the default budget looks first at the prior's 5th percentile (12 s).
    let prior = CompletionModel::default().window("E1");
    assert_eq!(p.next_poll(Duration::ZERO, prior, 1), prior.early);
    for window in [
        prior,
        Window::log_normal(secs(45.0), 0.5),
        Window::log_normal(secs(12.0), 0.45),
    ] {
        for budget in [1.0, 2.0, 5.0, 12.0, 40.0] {
            let p = PollSettings {
                expected_calls: budget,
                ..PollSettings::default()
            };
            let first = p.next_poll(Duration::ZERO, window, 1);
            assert!(first >= window.early, "{window:?}, {budget}: {first:?}");
            // Also when a reconcile comes a little before it (a restart, a spec change).
            let almost = first.mul_f64(0.9);
            assert!(almost + p.next_poll(almost, window, 1) >= first);
        }
    }
}

#[test]
fn a_small_budget_spends_its_first_call_later() {
    let w = Window::log_normal(secs(45.0), 0.5);
    let at = |calls| {
        PollSettings {
            expected_calls: calls,
            ..PollSettings::default()
        }
        .next_poll(Duration::ZERO, w, 1)
    };
    assert!(at(2.0) > at(12.0), "{:?} vs {:?}", at(2.0), at(12.0));
    assert!(at(2.0) > secs(30.0), "{:?}", at(2.0));
}

#[test]
fn intervals_stay_between_min_and_max() {
    for p in [
        PollSettings::default(),
        PollSettings {
            min_interval: secs(3.0),
            max_interval: secs(20.0),
            expected_calls: 40.0,
            ..PollSettings::default()
        },
        PollSettings {
            expected_calls: 2.0,
            ..PollSettings::default()
        },
    ] {
        for window in [
            CompletionModel::default().window("E1"),
            Window::log_normal(secs(45.0), 0.5),
            Window::log_normal(secs(5.0), 0.1),
        ] {
            for t in (0..2000).map(|i| secs(i as f64 * 0.7)) {
                let next = p.next_poll(t, window, 1);
                assert!(
                    next >= p.min_interval,
                    "{next:?} at {t:?}, {window:?}, {p:?}"
                );
                // The wait for the first look is no interval between two looks.
                if t >= p.first_poll(window) {
                    assert!(
                        next <= p.max_interval,
                        "{next:?} at {t:?}, {window:?}, {p:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn polls_are_densest_where_completion_is_likely_and_back_off_in_the_tail() {
    let p = PollSettings::default();
    let w = Window::log_normal(secs(45.0), 0.5);
    let at_median = p.next_poll(secs(45.0), w, 1);
    let in_tail = p.next_poll(w.late + secs(200.0), w, 1);
    assert!(at_median < secs(4.0), "{at_median:?}");
    assert_eq!(in_tail, p.max_interval);
}

#[test]
fn the_schedule_spends_the_calls_it_is_given_near_the_limit() {
    // When the model is right, the schedule costs about `expected_calls` and its delay × calls
    // is within 10 % of the physical limit.
    for (median, sigma) in [(45.0, 0.5), (90.0, 0.5), (45.0, 0.8)] {
        let truth = LogNormal::new(secs(median), sigma);
        let p = PollSettings::default();
        let (delay, calls) = cost(
            &poll_times(&p, Window::log_normal(secs(median), sigma), 3000.0),
            truth,
        );
        assert!(
            (calls - p.expected_calls).abs() < 1.5,
            "{median} s, sigma {sigma}: {calls} calls"
        );
        let ratio = delay * calls / truth.physical_limit();
        assert!(ratio < 1.1, "{median} s, sigma {sigma}: ratio {ratio}");
    }
}

#[test]
fn cold_lone_invalidation_meets_the_objective_under_the_prior() {
    // No history: the prior (45 s, 0.8) schedules the polls; the service is log-normal(45 s,
    // 0.5). Objective: mean delay ≤ 3 s with ≤ 15 calls; this leaves room for the status write.
    let p = PollSettings::default();
    let polls = poll_times(&p, CompletionModel::default().window("E1"), 3000.0);
    let (delay, calls) = cost(&polls, LogNormal::new(secs(45.0), 0.5));
    assert!(delay < 2.5 && calls < 13.0, "{delay} s, {calls} calls");
    // A service twice as slow does not undo it: the delay stays, the calls grow with it.
    let (delay, calls) = cost(&polls, LogNormal::new(secs(90.0), 0.5));
    assert!(delay < 2.7 && calls < 25.0, "{delay} s, {calls} calls");
}

#[test]
fn warm_schedule_meets_the_objective_after_twenty_completions() {
    // 20 completions drawn from log-normal(45 s, 0.5) (its quantiles), then the learned
    // schedule: ≤ 2 s with ≤ 12 calls, minus room for the status write.
    let m = CompletionModel::default();
    let truth = LogNormal::new(secs(45.0), 0.5);
    // The quantiles from both ends inwards, so that fading (newest weigh most) does not tilt
    // the estimate one way.
    for k in 0..20 {
        let i = if k % 2 == 0 { k / 2 } else { 19 - k / 2 };
        let z = -1.96 + 3.92 * (i as f64 + 0.5) / 20.0;
        m.observe("E1", secs(45.0 * (0.5 * z).exp()));
    }
    let w = m.window("E1");
    let (delay, calls) = cost(&poll_times(&PollSettings::default(), w, 3000.0), truth);
    assert!(
        delay < 1.8 && calls <= 12.0,
        "{w:?}: {delay} s, {calls} calls"
    );
}

#[test]
fn a_shared_list_polls_a_group_faster_but_at_most_once_per_batch_interval() {
    let p = PollSettings::default();
    let w = Window::log_normal(secs(45.0), 0.5);
    // Before the window, a shared List is no reason to look.
    assert_eq!(p.next_poll(Duration::ZERO, w, 20), w.early);
    // Where completion is likely, twenty answers per call hit the floor of one List per 2 s.
    assert_eq!(p.next_poll(secs(40.0), w, 20), secs(2.0));
    // Two: √2 times one invalidation's rate, so a shorter step than polling alone, but never
    // more often than the board is refreshed.
    let (alone, two) = (p.next_poll(secs(25.0), w, 1), p.next_poll(secs(25.0), w, 2));
    assert!(two < alone && two >= secs(2.0), "{two:?} against {alone:?}");
    // Far past the window a group backs off like one invalidation does: a stuck batch is not
    // listed every 2 s for as long as its objects wait.
    let stuck = p.next_poll(w.late + secs(300.0), w, 20);
    assert!(stuck > secs(10.0), "{stuck:?}");
    // Without a batch interval, `sharing` changes nothing: every object asks for itself.
    let unbatched = PollSettings {
        batch_interval: None,
        ..PollSettings::default()
    };
    assert_eq!(
        unbatched.next_poll(secs(40.0), w, 20),
        unbatched.next_poll(secs(40.0), w, 1)
    );
}

/// Mean delay and calls per invalidation when `groups` groups of `n` invalidations, submitted
/// together on one new distribution each, are polled with one call per look that answers for
/// all in flight (a shared List); `next(window, t, in_flight)` is the step after a look at `t`,
/// with the distribution's model fed every completion seen, as the operator does. Completion
/// times: `truth`, sampled with a fixed seed.
fn group_cost(
    next: impl Fn(Window, Duration, usize) -> Duration,
    truth: LogNormal,
    groups: usize,
    n: usize,
) -> (f64, f64) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut uniform = move || {
        // xorshift64*: a reproducible sample, nothing more.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut delay, mut calls) = (0.0, 0.0);
    for _ in 0..groups {
        let mut done: Vec<f64> = (0..n)
            .map(|_| {
                // Box–Muller.
                let z = (-2.0 * (1.0 - uniform()).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * uniform()).cos();
                (truth.mu + truth.sigma * z).exp()
            })
            .collect();
        let model = CompletionModel::default();
        let mut t = Duration::ZERO;
        while !done.is_empty() {
            t += next(model.window("E1"), t, done.len());
            calls += 1.0;
            let now = t.as_secs_f64();
            done.retain(|&c| {
                let seen = c <= now;
                if seen {
                    delay += now - c;
                    model.observe("E1", t);
                }
                !seen
            });
        }
    }
    let total = (groups * n) as f64;
    (delay / total, calls / total)
}

#[test]
fn a_group_on_one_distribution_pays_fewer_lists_than_a_fixed_batch_interval_and_no_more_delay() {
    // The `concurrent` benchmark's case: 20 invalidations submitted together on a distribution
    // never seen (the prior, 45 s / 0.8), completing log-normal(45 s, 0.5).
    let truth = LogNormal::new(secs(45.0), 0.5);
    let p = PollSettings::default();
    let ours = group_cost(|w, t, m| p.next_poll(t, w, m), truth, 200, 20);
    // The rule before: one List every batch interval through the whole window and after it.
    let every_batch = group_cost(
        |w, t, m| {
            let alone = p.next_poll(t, w, 1);
            if m >= 2 && t >= w.early {
                alone.min(secs(2.0))
            } else {
                alone
            }
        },
        truth,
        200,
        20,
    );
    // Fixed pollers ask for each object on its own: one call per object per look.
    let fixed = |every: f64| {
        let f = PollSettings::fixed(secs(every));
        group_cost(|w, t, m| f.next_poll(t, w, m), truth, 200, 1)
    };
    let (ten, twenty, thirty) = (fixed(10.0), fixed(20.0), fixed(30.0));
    // At most one List per 3 s instead of 2 s: fewer calls, a little more delay.
    let three = PollSettings {
        batch_interval: Some(secs(3.0)),
        ..PollSettings::default()
    };
    let politer = group_cost(|w, t, m| three.next_poll(t, w, m), truth, 200, 20);
    eprintln!(
        "ours {ours:?}, with 3 s {politer:?}; one List per batch interval {every_batch:?}; \
         fixed 10 s {ten:?}, 20 s {twenty:?}, 30 s {thirty:?}"
    );
    assert!(
        ours.1 < every_batch.1 * 0.95 && ours.0 < every_batch.0 + 0.25,
        "ours {ours:?} against one List per batch interval {every_batch:?}"
    );
    for (every, fixed) in [(10, ten), (20, twenty)] {
        assert!(
            ours.0 < fixed.0 && ours.1 <= fixed.1,
            "ours {ours:?} against fixed {every} s {fixed:?}"
        );
    }
    // The default does not dominate the 30 s poller (more calls, a tenth of the delay); a batch
    // interval of 3 s does, as a smaller budget does for one invalidation.
    assert!(
        ours.1 > thirty.1 && ours.0 < thirty.0 / 10.0,
        "{ours:?} {thirty:?}"
    );
    assert!(
        politer.0 < thirty.0 && politer.1 <= thirty.1,
        "3 s {politer:?} against fixed 30 s {thirty:?}"
    );
}

#[test]
fn fixed_schedule_is_fixed() {
    let p = PollSettings::fixed(secs(20.0));
    let w = CompletionModel::default().window("E1");
    for t in [0, 5, 100, 1000] {
        assert_eq!(p.next_poll(Duration::from_secs(t), w, 20), secs(20.0));
    }
}

#[test]
fn a_budget_for_each_fixed_poller_dominates_it() {
    // On log-normal(45 s, 0.5), learned: for each fixed poller there is a budget with lower delay
    // at no more calls (one schedule cannot beat 10 s and 30 s at once: their delay × calls
    // corner, 5 s × 2.2 calls, is below the physical limit of 18.7).
    let truth = LogNormal::new(secs(45.0), 0.5);
    let w = Window::log_normal(secs(45.0), 0.55);
    for (every, budget) in [(5.0, 11.0), (10.0, 5.0), (20.0, 3.0), (30.0, 2.1)] {
        let fixed = cost(
            &poll_times(&PollSettings::fixed(secs(every)), w, 3000.0),
            truth,
        );
        let p = PollSettings {
            expected_calls: budget,
            ..PollSettings::default()
        };
        let ours = cost(&poll_times(&p, w, 3000.0), truth);
        assert!(
            ours.0 < fixed.0 && ours.1 <= fixed.1,
            "every {every} s: fixed {fixed:?}, budget {budget}: {ours:?}"
        );
    }
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
    // AWS: tag invalidations complete in under 25 s at P95; the prior's own P95 is near that.
    let p95 = tags.median.as_secs_f64() * (1.645 * tags.sigma).exp();
    assert!((20.0..35.0).contains(&p95), "{tags:?}: P95 {p95} s");
    assert!(tags.early < Duration::from_secs(3), "{tags:?}");
    assert!(tags.late < paths.late / 4, "{tags:?} against {paths:?}");
    // Slow path invalidations do not slow the tag schedule down, and the other way round.
    for _ in 0..20 {
        m.observe_kind("E1", Kind::Paths, Duration::from_secs(600));
    }
    assert_eq!(m.window_kind("E1", Kind::TagsOnly), tags);
    assert!(m.window_kind("E1", Kind::Paths).early > Duration::from_secs(60));
}

#[test]
fn a_completion_seen_late_is_placed_where_the_belief_puts_it_inside_the_interval() {
    let w = Window::log_normal(secs(45.0), 0.5);
    // A narrow interval: about its middle.
    let t = w.completed_within(secs(44.0), secs(46.0)).as_secs_f64();
    assert!((t - 45.0).abs() < 0.2, "{t}");
    // Never outside the interval.
    let t = w.completed_within(secs(100.0), secs(101.0)).as_secs_f64();
    assert!((100.0..=101.0).contains(&t), "{t}");
    // Submitted, first look at 120 s says Completed: not 120 s (the detection delay would be
    // learned as completion time), near the belief's median instead.
    let t = w
        .completed_within(Duration::ZERO, secs(120.0))
        .as_secs_f64();
    assert!((40.0..50.0).contains(&t), "{t}");
    // An interval the belief gives no mass: its middle.
    let t = w.completed_within(secs(2000.0), secs(2002.0)).as_secs_f64();
    assert!((t - 2001.0).abs() < 1e-6, "{t}");
}
