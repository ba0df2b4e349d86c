//! Prometheus metrics (`/metrics`). Counters and histograms are updated as things happen;
//! gauges of what is in flight are read from the scheduler's index (fed by the controller's
//! watch) at scrape time, so they cannot drift from what the cluster says. Names and meanings: `docs/metrics.md`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use cfinv_cloudfront::FailureReason;

use crate::scheduler::Scheduler;

const PREFIX: &str = "cloudfront_invalidation";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DistributionLabels {
    pub distribution: String,
}

fn seconds_histogram() -> Histogram {
    // 0.25 s .. ~68 min: covers reconcile latency and CloudFront completion times alike.
    Histogram::new(exponential_buckets(0.25, 2.0, 15))
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// The cache the in-flight gauges read: set while this process leads and reconciles,
    /// `None` on a standby (which then exports none of them rather than stale numbers). The
    /// collector reading it is registered once, so re-elections never add families.
    cache: Arc<Mutex<Option<Arc<Scheduler>>>>,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub failures: Family<ReasonLabels, Counter>,
    pub aws_calls: Family<CallLabels, Counter>,
    pub paths_billed: Family<DistributionLabels, Counter>,
    pub submit_to_completed: Histogram,
    pub detection_delay: Histogram,
    pub leader: Gauge,
    pub ttl_deletions: Family<PhaseLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles, by result (ok or error)",
            reconciles.clone(),
        );
        let reconcile_duration = seconds_histogram();
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, including the CloudFront call and the status write",
            reconcile_duration.clone(),
        );
        let failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "failures",
            "Objects that ended Failed, by reason",
            failures.clone(),
        );
        // Every reason from the start: an alert on increase() sees the first failure of a
        // reason only if the series existed (at 0) before it.
        for reason in FailureReason::ALL {
            let _ = failures.get_or_create(&ReasonLabels {
                reason: reason.as_str().to_owned(),
            });
        }
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "CloudFront API calls, by operation and result code (ok or the error code)",
            aws_calls.clone(),
        );
        let paths_billed = Family::<DistributionLabels, Counter>::default();
        registry.register(
            "paths_billed",
            "Invalidation paths submitted to CloudFront (what CloudFront bills; a wildcard is one path)",
            paths_billed.clone(),
        );
        let submit_to_completed = seconds_histogram();
        registry.register(
            "submit_to_completed_seconds",
            "Time from CloudFront accepting an invalidation to the operator marking it Completed",
            submit_to_completed.clone(),
        );
        let detection_delay = seconds_histogram();
        registry.register(
            "detection_delay_seconds",
            "Upper bound on the delay between CloudFront completing and the operator noticing: \
             the time since the last poll that still saw it in progress",
            detection_delay.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this process is the leader and reconciling, 0 on standby",
            leader.clone(),
        );
        let cache = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(CacheCollector {
            cache: cache.clone(),
        }));
        let ttl_deletions = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "ttl_deletions",
            "Finished objects deleted because their time to live after finishing was up \
             (spec.ttlSecondsAfterFinished or --ttl-after-finished), by phase",
            ttl_deletions.clone(),
        );
        Self {
            registry,
            cache,
            reconciles,
            reconcile_duration,
            failures,
            aws_calls,
            paths_billed,
            submit_to_completed,
            detection_delay,
            leader,
            ttl_deletions,
        }
    }

    /// Publish gauges read from this controller's scheduler index on every scrape (replacing
    /// the index of an earlier term as leader; the collector itself is registered once).
    pub fn register_cache(&self, index: Arc<Scheduler>) {
        *self.cache.lock().expect("cache lock") = Some(index);
    }

    /// The controller stopped (lost the lease, shutting down): export no cache gauges.
    pub fn unregister_cache(&self) {
        *self.cache.lock().expect("cache lock") = None;
    }

    pub fn record_ttl_deletion(&self, phase: &str) {
        self.ttl_deletions
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .inc();
    }

    pub fn record_call(&self, operation: &str, code: &str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                operation: operation.to_owned(),
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn record_reconcile(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn record_failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn record_billed(&self, distribution: &str, paths: u64) {
        self.paths_billed
            .get_or_create(&DistributionLabels {
                distribution: distribution.to_owned(),
            })
            .inc_by(paths);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Gauges over the watched objects: how many are in each phase, what is in flight per
/// distribution (what counts against CloudFront's in-progress quotas) and what waits for it,
/// from the scheduler's running sums (no walk over the objects).
struct CacheCollector {
    cache: Arc<Mutex<Option<Arc<Scheduler>>>>,
}

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(index) = self.cache.lock().expect("cache lock").clone() else {
            return Ok(());
        };
        let snapshot = index.snapshot();
        let phases: BTreeMap<&'static str, i64> = snapshot
            .phases
            .iter()
            .map(|(p, n)| (p.as_str(), *n))
            .collect();
        let in_flight = snapshot.in_flight;
        let queued = snapshot.queued;

        // The registry adds the `cloudfront_invalidation_` prefix to collectors' names too.
        let (objects, in_flight_name, in_flight_paths) =
            ("objects", "in_flight", "in_flight_paths");
        let mut family = encoder.encode_descriptor(
            objects,
            "CloudFrontInvalidation objects, by phase",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (phase, n) in phases {
            let labels = [("phase", phase)];
            ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            in_flight_name,
            "Invalidations in progress in CloudFront, per distribution",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (dist, f) in &in_flight {
            let labels = [("distribution", dist.as_str())];
            ConstGauge::new(f.invalidations).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            in_flight_paths,
            "Paths of invalidations in progress in CloudFront, per distribution",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (dist, f) in &in_flight {
            let labels = [("distribution", dist.as_str())];
            ConstGauge::new(f.billed_paths).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "in_flight_wildcard_paths",
            "Wildcard paths of invalidations in progress in CloudFront, per distribution \
             (the quota is 15, independent of the 3,000 other paths)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (dist, f) in &in_flight {
            let labels = [("distribution", dist.as_str())];
            ConstGauge::new(f.wildcard_paths).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "queued",
            "Objects waiting in phase Queued for a slot in the distribution's in-progress quota",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (dist, n) in &queued {
            let labels = [("distribution", dist.as_str())];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

impl cfinv_cloudfront::CallSink for Metrics {
    fn record_call(&self, operation: &str, outcome: &str) {
        Metrics::record_call(self, operation, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/metrics.md describes every metric the operator exports.
    #[test]
    fn every_metric_is_documented() {
        let doc = include_str!("../../../docs/metrics.md");
        let m = Metrics::new();
        m.register_cache(Arc::default());
        m.record_ttl_deletion("Completed");
        m.record_failure("Timeout");
        m.record_call("GetInvalidation", "ok");
        m.record_billed("E1", 1);
        m.record_reconcile(true, Duration::from_millis(1));
        for line in m.encode().lines() {
            let Some(name) = line
                .strip_prefix("# TYPE ")
                .and_then(|l| l.split(' ').next())
            else {
                continue;
            };
            let kind = line.rsplit(' ').next().unwrap_or_default();
            let exported = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            assert!(
                doc.contains(&format!("`{exported}`")),
                "docs/metrics.md lacks {exported}"
            );
        }
    }

    /// (name, labels) of every sample a real Prometheus parser reads from `text`, and the
    /// names it found documented (`# HELP`).
    type Series = (String, BTreeMap<String, String>);

    fn parsed(text: &str) -> (Vec<Series>, Vec<String>) {
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let samples = scrape
            .samples
            .iter()
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (s.metric.clone(), labels)
            })
            .collect();
        (samples, scrape.docs.keys().cloned().collect())
    }

    /// Item 9: leader, standby, leader again: the cache collector is registered once, so the
    /// scrape has no duplicate family or series, and a standby exports no cache gauges.
    #[test]
    fn metrics_survive_two_elections_without_duplicates_or_stale_gauges() {
        let m = Metrics::new();
        for term in 0..2 {
            let mut obj = cfinv_api::crd::CloudFrontInvalidation::new(
                &format!("o{term}"),
                cfinv_api::crd::CloudFrontInvalidationSpec {
                    distribution_id: Some("E1".into()),
                    distribution_tenant_id: None,
                    paths: vec!["/a".into()],
                    caller_reference: None,
                    timeout_seconds: 900,
                    ttl_seconds_after_finished: None,
                },
            );
            obj.metadata.namespace = Some("web".into());
            obj.metadata.uid = Some(format!("uid-{term}"));
            obj.status = Some(cfinv_api::crd::CloudFrontInvalidationStatus {
                phase: Some(cfinv_api::crd::Phase::InProgress),
                invalidation_id: Some(format!("I{term}")),
                distribution_id: Some("E1".into()),
                submitted_paths: Some(vec!["/a".into()]),
                billed_paths: Some(1),
                ..Default::default()
            });
            // A new term's controller, with its own index fed by its watch.
            let index = Arc::new(Scheduler::default());
            use kube::runtime::watcher::Event;
            for event in [Event::Init, Event::InitApply(obj), Event::InitDone] {
                index.observe(&event);
            }
            m.register_cache(index);
            m.leader.set(1);
            let text = m.encode();
            let (samples, _) = parsed(&text);
            let mut seen = std::collections::BTreeSet::new();
            for sample in &samples {
                assert!(
                    seen.insert(sample.clone()),
                    "duplicate series {sample:?} in\n{text}"
                );
            }
            let families = text
                .lines()
                .filter(|l| l.starts_with("# TYPE cloudfront_invalidation_in_flight "))
                .count();
            assert_eq!(families, 1, "{text}");
            let in_flight: Vec<_> = samples
                .iter()
                .filter(|(name, _)| name == "cloudfront_invalidation_in_flight")
                .collect();
            assert_eq!(in_flight.len(), 1, "term {term}: {text}");

            // Standby: lost the lease, the controller stopped.
            m.unregister_cache();
            m.leader.set(0);
            let text = m.encode();
            let (samples, _) = parsed(&text);
            assert!(
                samples.iter().all(|(name, _)| !name
                    .starts_with("cloudfront_invalidation_in_flight")
                    && name != "cloudfront_invalidation_objects"),
                "a standby exports no cache gauges:\n{text}"
            );
        }
    }

    #[test]
    fn every_failure_reason_is_exported_from_the_start() {
        let text = Metrics::new().encode();
        for reason in FailureReason::ALL {
            let line = format!(
                "cloudfront_invalidation_failures_total{{reason=\"{}\"}} 0",
                reason.as_str()
            );
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
    }

    /// The quota gauges per distribution: wildcard paths in flight, objects Queued.
    #[test]
    fn quota_gauges_per_distribution() {
        use cfinv_api::crd::{
            CloudFrontInvalidation, CloudFrontInvalidationSpec, CloudFrontInvalidationStatus, Phase,
        };
        let object = |name: &str, phase: Phase, paths: &[&str]| {
            let mut o = CloudFrontInvalidation::new(
                name,
                CloudFrontInvalidationSpec {
                    distribution_id: Some("E1".into()),
                    distribution_tenant_id: None,
                    paths: paths.iter().map(|p| (*p).into()).collect(),
                    caller_reference: None,
                    timeout_seconds: 900,
                    ttl_seconds_after_finished: None,
                },
            );
            o.metadata.namespace = Some("web".into());
            o.metadata.uid = Some(format!("uid-{name}"));
            let submitted = phase == Phase::InProgress;
            o.status = Some(CloudFrontInvalidationStatus {
                phase: Some(phase),
                invalidation_id: submitted.then(|| format!("I-{name}")),
                distribution_id: Some("E1".into()),
                submitted_paths: submitted.then(|| paths.iter().map(|p| (*p).into()).collect()),
                billed_paths: submitted.then_some(paths.len() as u32),
                ..Default::default()
            });
            o
        };
        let index = Arc::new(Scheduler::default());
        use kube::runtime::watcher::Event;
        index.observe(&Event::Init);
        for o in [
            object("a", Phase::InProgress, &["/a.html", "/b/*", "/c*"]),
            object("b", Phase::Queued, &["/late/*"]),
        ] {
            index.observe(&Event::InitApply(o));
        }
        index.observe(&Event::InitDone);
        let m = Metrics::new();
        m.register_cache(index);
        let text = m.encode();
        for line in [
            "cloudfront_invalidation_in_flight{distribution=\"E1\"} 1",
            "cloudfront_invalidation_in_flight_paths{distribution=\"E1\"} 3",
            "cloudfront_invalidation_in_flight_wildcard_paths{distribution=\"E1\"} 2",
            "cloudfront_invalidation_queued{distribution=\"E1\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.record_call("CreateInvalidation", "ok");
        m.record_reconcile(true, Duration::from_millis(30));
        m.record_billed("E2EXAMPLE", 3);
        m.record_failure("Timeout");
        let text = m.encode();
        for line in [
            "cloudfront_invalidation_aws_calls_total{operation=\"CreateInvalidation\",code=\"ok\"} 1",
            "cloudfront_invalidation_paths_billed_total{distribution=\"E2EXAMPLE\"} 3",
            "cloudfront_invalidation_failures_total{reason=\"Timeout\"} 1",
            "cloudfront_invalidation_reconciles_total{result=\"ok\"} 1",
            "cloudfront_invalidation_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
