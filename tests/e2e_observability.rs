//! End to end, what the chart's alerts and dashboard read: every metric and label that their
//! PromQL uses exists in a real operator's `/metrics`.
//!
//! The operator runs against the real kube-apiserver and the CloudFront simulator and is driven
//! through the outcomes that make its labelled families appear: an invalidation in flight, one
//! queued behind a full wildcard quota, one Completed, one Failed with a reason, throttled
//! calls. The rules are rendered by `helm template` (as a user installs them), the dashboard is
//! read from the chart; both are parsed with a PromQL parser (`promql-parser`) and the scrapes
//! with a Prometheus text-format parser (`prometheus-parse`). Renaming a metric, a label or a
//! label value the alerts rely on fails this test.

#[path = "e2e/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use cfinv_api::crd::Phase;
use cloudfront_sim::{Completion, FaultConfig, Operation, Simulator};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AggregateExpr, BinaryExpr, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(60);
const CHART: &str = "charts/cloudfront-invalidation-operator";
const DASHBOARD: &str =
    "charts/cloudfront-invalidation-operator/dashboards/cloudfront-invalidation-operator.json";

/// Labels Prometheus gives every series of a target (a ServiceMonitor's): never in `/metrics`.
const TARGET_LABELS: &[&str] = &[
    "job",
    "namespace",
    "pod",
    "instance",
    "service",
    "endpoint",
    "container",
];
/// Series Prometheus makes itself.
const PROMETHEUS_SERIES: &[&str] = &["up"];

// ------------------------------------------------------------------------------------------
// What /metrics has
// ------------------------------------------------------------------------------------------

/// Series names as Prometheus stores them (`_total`, `_bucket` with `le`, `_count`, `_sum`),
/// each with the label sets seen.
#[derive(Default)]
struct Exposition(BTreeMap<String, Vec<BTreeMap<String, String>>>);

impl Exposition {
    fn add(&mut self, text: &str) {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the /metrics text parses");
        for sample in scrape.samples {
            let labels: BTreeMap<String, String> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match &sample.value {
                // The parser folds a histogram's buckets into one sample named after the family.
                prometheus_parse::Value::Histogram(buckets) => {
                    for b in buckets {
                        let mut with_le = labels.clone();
                        with_le.insert("le".into(), b.less_than.to_string());
                        self.0
                            .entry(format!("{}_bucket", sample.metric))
                            .or_default()
                            .push(with_le);
                    }
                }
                _ => self
                    .0
                    .entry(sample.metric.clone())
                    .or_default()
                    .push(labels),
            }
        }
    }

    fn has_label(&self, metric: &str, label: &str) -> bool {
        self.0
            .get(metric)
            .is_some_and(|sets| sets.iter().any(|l| l.contains_key(label)))
    }
}

// ------------------------------------------------------------------------------------------
// What the PromQL uses
// ------------------------------------------------------------------------------------------

/// The metrics and labels one query relies on.
#[derive(Default)]
struct Uses {
    /// Each selector: its metric and its label matchers.
    selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels of `by`/`without`/`on`/`ignoring`/`group_*`, with the metrics under them.
    groupings: Vec<(Vec<String>, BTreeSet<String>)>,
}

struct Collect<'a>(&'a mut Uses);

fn metric_of(name: &Option<String>, matchers: &[Matcher]) -> String {
    name.clone()
        .or_else(|| {
            matchers
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.clone())
        })
        .expect("a selector with a metric name")
}

fn metrics_under(expr: &Expr) -> BTreeSet<String> {
    let mut uses = Uses::default();
    walk_expr(&mut Collect(&mut uses), expr).expect("walk");
    uses.selectors.into_iter().map(|(m, _)| m).collect()
}

impl ExprVisitor for Collect<'_> {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let vs = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = vs {
            assert!(
                vs.matchers.or_matchers.is_empty(),
                "`or` inside a selector is not checked: {expr}"
            );
            let matchers: Vec<Matcher> = vs
                .matchers
                .matchers
                .iter()
                .filter(|m| m.name != "__name__")
                .cloned()
                .collect();
            self.0
                .selectors
                .push((metric_of(&vs.name, &vs.matchers.matchers), matchers));
        }
        match expr {
            Expr::Aggregate(AggregateExpr {
                expr: inner,
                modifier: Some(m),
                ..
            }) => {
                let labels = m.labels().labels.clone();
                self.0.groupings.push((labels, metrics_under(inner)));
            }
            Expr::Binary(BinaryExpr {
                lhs,
                rhs,
                modifier: Some(m),
                ..
            }) => {
                let mut labels = m
                    .matching
                    .as_ref()
                    .map(|l| l.labels().labels.clone())
                    .unwrap_or_default();
                labels.extend(
                    m.card
                        .labels()
                        .map(|l| l.labels.clone())
                        .unwrap_or_default(),
                );
                if !labels.is_empty() {
                    let mut metrics = metrics_under(lhs);
                    metrics.extend(metrics_under(rhs));
                    self.0.groupings.push((labels, metrics));
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

fn uses_of(query: &str) -> Uses {
    let expr =
        promql_parser::parser::parse(query).unwrap_or_else(|e| panic!("not PromQL ({e}): {query}"));
    let mut uses = Uses::default();
    walk_expr(&mut Collect(&mut uses), &expr).expect("walk");
    uses
}

/// Everything `uses` relies on that `exposition` lacks, in words.
fn missing(exposition: &Exposition, what: &str, uses: &Uses) -> Vec<String> {
    let mut out = Vec::new();
    for (metric, matchers) in &uses.selectors {
        if PROMETHEUS_SERIES.contains(&metric.as_str()) {
            continue;
        }
        let Some(series) = exposition.0.get(metric) else {
            out.push(format!("{what}: metric {metric} is not in /metrics"));
            continue;
        };
        for m in matchers
            .iter()
            .filter(|m| !TARGET_LABELS.contains(&m.name.as_str()))
        {
            if !exposition.has_label(metric, &m.name) {
                out.push(format!("{what}: {metric} has no label {}", m.name));
            } else if matches!(m.op, MatchOp::Equal | MatchOp::Re(_))
                && !series
                    .iter()
                    .any(|l| l.get(&m.name).is_some_and(|v| m.is_match(v)))
            {
                out.push(format!("{what}: no series of {metric} has {m}"));
            }
        }
    }
    for (labels, metrics) in &uses.groupings {
        for label in labels
            .iter()
            .filter(|l| !TARGET_LABELS.contains(&l.as_str()))
        {
            let known = metrics
                .iter()
                .filter(|m| !PROMETHEUS_SERIES.contains(&m.as_str()));
            if !known.clone().any(|m| exposition.has_label(m, label)) {
                out.push(format!(
                    "{what}: groups by {label}, which none of {metrics:?} has"
                ));
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// The queries: rendered rules, the dashboard
// ------------------------------------------------------------------------------------------

/// The alerts' expressions, rendered by helm with prometheusRule.enabled=true: (alert, expr).
fn rule_queries() -> Vec<(String, String)> {
    let root = repo_path("");
    let tools = Command::new(repo_path("scripts/chart-check"))
        .arg("--tools")
        .current_dir(&root)
        .output()
        .expect("run scripts/chart-check --tools");
    assert!(
        tools.status.success(),
        "scripts/chart-check --tools: {}",
        String::from_utf8_lossy(&tools.stderr)
    );
    let helm = std::path::PathBuf::from(String::from_utf8_lossy(&tools.stdout).trim()).join("helm");
    let home = tempfile::tempdir().expect("a folder for helm");
    let out = Command::new(helm)
        .args([
            "template",
            "cfinv",
            CHART,
            "--namespace",
            "ops",
            "--set",
            "prometheusRule.enabled=true",
        ])
        .current_dir(&root)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = yaml_documents(&String::from_utf8_lossy(&out.stdout));
    let rules: Vec<(String, String)> = docs
        .iter()
        .filter(|d| d["kind"] == "PrometheusRule")
        .flat_map(|d| d["spec"]["groups"].as_array().cloned().unwrap_or_default())
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_owned(),
                r["expr"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        rules.len() >= 7,
        "the chart rendered {} alerts",
        rules.len()
    );
    rules
}

/// The dashboard's queries with its variables replaced as Grafana would (any value for the
/// selectors, 5m for the intervals, the constants' values): (panel or variable, PromQL).
fn dashboard_queries() -> Vec<(String, String)> {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path(DASHBOARD)).expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut values: BTreeMap<String, String> = ["__rate_interval", "__interval", "__range"]
        .into_iter()
        .map(|v| (v.to_owned(), "5m".to_owned()))
        .collect();
    let variables = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in &variables {
        let name = v["name"].as_str().expect("a variable name").to_owned();
        let value = match v["type"].as_str() {
            Some("constant") => v["query"].as_str().expect("a constant's value").to_owned(),
            _ => ".*".to_owned(),
        };
        values.insert(name, value);
    }
    let substitute = |q: &str| {
        regex::Regex::new(r"\$\{?(\w+)\}?")
            .expect("regex")
            .replace_all(q, |c: &regex::Captures| {
                values
                    .get(&c[1])
                    .cloned()
                    .unwrap_or_else(|| panic!("unknown variable ${} in {q}", &c[1]))
            })
            .into_owned()
    };
    let mut out = Vec::new();
    for v in variables.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"]
            .as_str()
            .expect("a query variable's query");
        let (selector, label) = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .unwrap_or_else(|| {
                panic!(
                    "variable {}: expected label_values(selector, label): {q}",
                    v["name"]
                )
            });
        // label_values(m, l) reads as `group by (l) (m)`: the label must be on the metric.
        out.push((
            format!("variable {}", v["name"].as_str().unwrap_or_default()),
            format!("group by ({}) ({})", label.trim(), substitute(selector)),
        ));
    }
    let mut panels: Vec<Value> = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        panels.push(p.clone());
        panels.extend(p["panels"].as_array().cloned().unwrap_or_default());
    }
    for p in &panels {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = t["expr"].as_str().expect("a target's expr");
            out.push((
                format!(
                    "panel {:?} query {}",
                    p["title"].as_str().unwrap_or_default(),
                    t["refId"].as_str().unwrap_or_default()
                ),
                substitute(expr),
            ));
        }
    }
    assert!(out.len() > 15, "the dashboard has {} queries", out.len());
    out
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    const OK: &str = "E2EOBSERVEOK01";
    const FULL: &str = "E2EOBSERVEFULL1";
    const DENIED: &str = "E2EOBSERVEDENY1";
    let queries: Vec<(String, String)> = rule_queries()
        .into_iter()
        .chain(dashboard_queries())
        .collect();

    let env = Env::start().await;
    let ns = env.namespace("observe").await;
    let api = env.api(&ns);
    // Invalidations stay in progress until the test completes them.
    let sim = Simulator::builder()
        .distributions([OK, FULL])
        .deny_access(DENIED)
        .completion(Completion::Fixed(Duration::from_secs(3600)))
        .start()
        .await
        .expect("the CloudFront simulator");
    let op = Operator::start(&env, env.operator("observe", &sim, &ns)).await;
    op.wait_ready().await;
    let mut exposition = Exposition::default();

    // In flight: one file path on OK, the whole wildcard quota (15) on FULL; a 16th wildcard
    // waits in phase Queued.
    create(&api, &manifest("in-flight", OK, &["/index.html"])).await;
    let wildcards: Vec<String> = (0..15).map(|i| format!("/w{i}/*")).collect();
    let refs: Vec<&str> = wildcards.iter().map(String::as_str).collect();
    create(&api, &manifest("quota-full", FULL, &refs)).await;
    wait_submitted(&api, "in-flight", WAIT).await;
    wait_submitted(&api, "quota-full", WAIT).await;
    create(&api, &manifest("queued", FULL, &["/late/*"])).await;
    // Failed with a reason: every call on DENIED answers AccessDenied.
    create(&api, &manifest("denied", DENIED, &["/a.html"])).await;
    let denied = wait_terminal(&api, "denied", WAIT).await;
    assert_eq!(denied.phase(), Phase::Failed, "{:?}", denied.status);
    // Throttled: CreateInvalidation answers Throttling until the test has seen it counted.
    sim.set_faults(
        FaultConfig::none()
            .for_operations([Operation::CreateInvalidation])
            .throttling(1.0),
    )
    .expect("set faults");
    create(&api, &manifest("throttled", OK, &["/throttled.html"])).await;
    let during = wait_for(
        "a queued object, and a throttled call counted",
        WAIT,
        || async {
            let text = op.metrics().await;
            let queued = metric(
                &text,
                "cloudfront_invalidation_queued",
                &[&format!("distribution=\"{FULL}\"")],
            );
            let throttled = metric(
                &text,
                "cloudfront_invalidation_aws_calls_total",
                &["code=\"Throttling\""],
            );
            match (queued, throttled) {
                (Some(q), Some(t)) if q >= 1.0 && t >= 1.0 => Ok(text),
                other => Err(format!("queued, throttled: {other:?}")),
            }
        },
    )
    .await;
    exposition.add(&during);
    sim.set_faults(FaultConfig::none()).expect("clear faults");
    wait_submitted(&api, "throttled", WAIT).await;

    // Completed: CloudFront finishes everything; the queued object goes in and finishes too.
    sim.complete_all_now();
    for name in ["in-flight", "quota-full", "throttled"] {
        wait_completed(&api, name, WAIT).await;
    }
    wait_submitted(&api, "queued", WAIT).await;
    sim.complete_all_now();
    wait_completed(&api, "queued", WAIT).await;
    let after = op.metrics().await;
    assert!(
        metric(
            &after,
            "cloudfront_invalidation_submit_to_completed_seconds_count",
            &[]
        )
        .is_some_and(|n| n >= 4.0),
        "four completions observed:\n{after}"
    );
    exposition.add(&after);

    // A set: an expression that uses a metric three times names it once.
    let mut problems = BTreeSet::new();
    let (mut selectors, mut groupings) = (0, 0);
    for (what, query) in &queries {
        let uses = uses_of(query);
        selectors += uses.selectors.len();
        groupings += uses.groupings.len();
        problems.extend(missing(&exposition, what, &uses));
    }
    eprintln!(
        "[e2e] {} queries ({selectors} selectors, {groupings} groupings) checked against {} series names in /metrics",
        queries.len(),
        exposition.0.len()
    );
    assert!(
        problems.is_empty(),
        "the alerts and the dashboard use what the operator does not export:\n{}\n\n/metrics while busy:\n{during}\n/metrics after:\n{after}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );

    // And the check bites: the same scrapes with one metric and one label value renamed.
    let mut renamed = Exposition::default();
    for text in [&during, &after] {
        renamed.add(
            &text
                .replace(
                    "cloudfront_invalidation_queued",
                    "cloudfront_invalidation_waiting",
                )
                .replace("code=\"Throttling\"", "code=\"Throttled\""),
        );
    }
    let found: Vec<String> = queries
        .iter()
        .flat_map(|(what, q)| missing(&renamed, what, &uses_of(q)))
        .collect();
    for expected in [
        "metric cloudfront_invalidation_queued is not in /metrics",
        "no series of cloudfront_invalidation_aws_calls_total has code=~",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "a rename went unnoticed ({expected}): {found:#?}"
        );
    }
}
