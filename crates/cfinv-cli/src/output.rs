//! Results on stdout: aligned `Label: value` text for people, one JSON object for scripts.
//! Every renderer is a pure function, so the formats are tested here.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::ValueEnum;
use jiff::Timestamp;
use serde::Serialize;

use super::cost::{CostEstimate, FREE_PATHS_PER_MONTH, PRICE_PER_PATH_MILLI_USD};
use cfinv_api::crd::Target;
use cfinv_api::paths::{DropReason, NormalizedPaths};
use cfinv_cloudfront::{Invalidation, InvalidationStatus, InvalidationSummary};

/// `--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned `Label: value` lines (a table for `list`).
    #[default]
    Text,
    /// One JSON object (camelCase keys, as in the resource's status).
    Json,
}

/// What `invalidate` reports, whatever the outcome. Fields that do not apply are left out of
/// the JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidateReport {
    /// `completed`, `submitted`, `failed`, `timedOut`, `invalidInput` or `dryRun`.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidation_id: Option<String>,
    /// CloudFront's status the last time it was asked (`InProgress`, `Completed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_reference: Option<String>,
    /// `flag`, `manifest`, `idempotencyKey` or `perRun` (see docs/cli.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_reference_source: Option<&'static str>,
    /// The paths sent (or that would be sent): normalized, deduplicated, covered paths removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Inputs left out, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<Vec<DroppedReport>>,
    /// Paths CloudFront bills for this request (a wildcard counts as one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billed_paths: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wildcard_paths: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_paths: Option<usize>,
    /// Dry runs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

impl InvalidateReport {
    /// Fills the path fields from the engine's result.
    pub fn with_paths(mut self, normalized: &NormalizedPaths) -> Self {
        self.paths = Some(normalized.paths.clone());
        self.dropped = Some(
            normalized
                .dropped
                .iter()
                .map(|d| DroppedReport {
                    input: d.input.clone(),
                    normalized: d.normalized.clone(),
                    reason: match d.reason {
                        DropReason::Duplicate => "duplicate",
                        DropReason::CoveredBy(_) => "covered",
                    },
                    covered_by: match &d.reason {
                        DropReason::CoveredBy(w) => Some(w.clone()),
                        DropReason::Duplicate => None,
                    },
                })
                .collect(),
        );
        self.billed_paths = Some(normalized.billed());
        self.wildcard_paths = Some(normalized.wildcards());
        self.object_paths = Some(normalized.objects());
        self
    }

    /// Fills the invalidation fields from CloudFront's answer.
    pub fn with_invalidation(mut self, invalidation: &Invalidation) -> Self {
        self.invalidation_id = Some(invalidation.id.clone());
        self.status = Some(status_str(&invalidation.status).to_owned());
        self.create_time = invalidation.create_time.map(|t| t.to_string());
        self
    }
}

/// One input path that is not sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedReport {
    /// As written.
    pub input: String,
    /// As it would have been sent.
    pub normalized: String,
    /// `duplicate` or `covered`.
    pub reason: &'static str,
    /// The submitted wildcard that covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<String>,
}

/// Why `invalidate` did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// The failure reason (`DistributionNotFound`, `AccessDenied`, … as in the resource's
    /// `Failed` condition), `Timeout` or `InvalidInput`.
    pub reason: String,
    /// CloudFront's error code, when CloudFront answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// The cost estimate of a dry run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// Paths past the free tier.
    pub charged_paths: u64,
    /// `chargedPaths` x `pricePerPathUsd`.
    pub usd: f64,
    pub price_per_path_usd: f64,
    pub free_paths_per_month: u64,
    /// As given with `--paths-this-month`; absent when the free tier is assumed used up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths_this_month: Option<u64>,
    /// The assumption, in words.
    pub assumption: String,
}

impl From<CostEstimate> for CostReport {
    fn from(c: CostEstimate) -> Self {
        Self {
            charged_paths: c.charged_paths,
            usd: c.milli_usd as f64 / 1000.0,
            price_per_path_usd: PRICE_PER_PATH_MILLI_USD as f64 / 1000.0,
            free_paths_per_month: FREE_PATHS_PER_MONTH,
            paths_this_month: c.paths_this_month,
            assumption: c.describe(),
        }
    }
}

/// `InProgress`, `Completed`, or what CloudFront said.
pub fn status_str(status: &InvalidationStatus) -> &str {
    match status {
        InvalidationStatus::InProgress => "InProgress",
        InvalidationStatus::Completed => "Completed",
        InvalidationStatus::Other(s) => s,
    }
}

/// A time for text output, to the second.
fn text_time(t: &Timestamp) -> String {
    format!("{t:.0}")
}

const LABEL_WIDTH: usize = 18;

/// `Label:` padded, then the value; continuation lines of a list are indented to the value.
fn field(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<LABEL_WIDTH$}{value}", format!("{label}:"));
}

fn list_field(out: &mut String, label: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if i == 0 {
            field(out, label, v);
        } else {
            let _ = writeln!(out, "{:LABEL_WIDTH$}{v}", "");
        }
    }
}

/// The text form of an `invalidate` report.
pub fn invalidate_text(r: &InvalidateReport) -> String {
    let mut out = String::new();
    if r.outcome == "dryRun" {
        out.push_str("Dry run: nothing was sent to CloudFront.\n");
    }
    if let Some(id) = &r.invalidation_id {
        field(&mut out, "Invalidation", id);
    }
    if let Some(d) = &r.distribution_id {
        field(&mut out, "Distribution", d);
    }
    if let Some(s) = &r.status {
        field(&mut out, "Status", s);
    }
    if let Some(t) = &r.create_time {
        let t = t
            .parse::<Timestamp>()
            .map_or_else(|_| t.clone(), |t| text_time(&t));
        field(&mut out, "Created", t);
    }
    match (&r.caller_reference, r.caller_reference_source) {
        (Some(reference), _) => field(&mut out, "Caller reference", reference),
        (None, Some("perRun")) => field(
            &mut out,
            "Caller reference",
            "new for each run (no --idempotency-key)",
        ),
        _ => {}
    }
    if let Some(paths) = &r.paths {
        let label = format!("Paths ({})", paths.len());
        list_field(&mut out, &label, paths);
    }
    if let Some(dropped) = r.dropped.as_ref().filter(|d| !d.is_empty()) {
        let lines: Vec<String> = dropped
            .iter()
            .map(|d| {
                let why = match &d.covered_by {
                    Some(w) => format!("covered by {w}"),
                    None => "duplicate".to_owned(),
                };
                if d.input == d.normalized {
                    format!("{} ({why})", d.input)
                } else {
                    format!("{} ({why}; normalized {})", d.input, d.normalized)
                }
            })
            .collect();
        list_field(&mut out, &format!("Dropped ({})", lines.len()), &lines);
    }
    if let Some(billed) = r.billed_paths {
        field(
            &mut out,
            "Billed paths",
            format!(
                "{billed} ({} wildcard, {} object)",
                r.wildcard_paths.unwrap_or(0),
                r.object_paths.unwrap_or(0)
            ),
        );
    }
    if let Some(cost) = &r.cost {
        field(&mut out, "Cost", &cost.assumption);
    }
    if let Some(s) = r.elapsed_seconds {
        field(
            &mut out,
            "Elapsed",
            super::progress::format_duration(std::time::Duration::from_secs_f64(s)),
        );
    }
    out
}

/// What `list` and `get` were asked about: `distributionId`, or `distributionTenantId` for a
/// distribution tenant (the flag's name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution_tenant_id: Option<String>,
}

impl From<&Target> for TargetReport {
    fn from(target: &Target) -> Self {
        match target {
            Target::Distribution(id) => Self {
                distribution_id: Some(id.clone()),
                distribution_tenant_id: None,
            },
            Target::Tenant(id) => Self {
                distribution_id: None,
                distribution_tenant_id: Some(id.clone()),
            },
        }
    }
}

impl TargetReport {
    /// The `Distribution:` or `Tenant:` line of the text form.
    fn text(&self, out: &mut String) {
        if let Some(id) = &self.distribution_id {
            field(out, "Distribution", id);
        }
        if let Some(id) = &self.distribution_tenant_id {
            field(out, "Tenant", id);
        }
    }
}

/// What `get` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidationReport {
    #[serde(flatten)]
    pub target: TargetReport,
    pub invalidation_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_reference: Option<String>,
    pub paths: Vec<String>,
}

impl InvalidationReport {
    pub fn new(target: &Target, inv: &Invalidation) -> Self {
        Self {
            target: target.into(),
            invalidation_id: inv.id.clone(),
            status: status_str(&inv.status).to_owned(),
            create_time: inv.create_time.map(|t| t.to_string()),
            caller_reference: inv.caller_reference.clone(),
            paths: inv.paths.clone(),
        }
    }
}

/// The text form of `get`.
pub fn invalidation_text(r: &InvalidationReport) -> String {
    let mut out = String::new();
    field(&mut out, "Invalidation", &r.invalidation_id);
    r.target.text(&mut out);
    field(&mut out, "Status", &r.status);
    if let Some(t) = &r.create_time {
        let t = t
            .parse::<Timestamp>()
            .map_or_else(|_| t.clone(), |t| text_time(&t));
        field(&mut out, "Created", t);
    }
    if let Some(c) = &r.caller_reference {
        field(&mut out, "Caller reference", c);
    }
    list_field(&mut out, &format!("Paths ({})", r.paths.len()), &r.paths);
    out
}

/// What `list` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListReport {
    #[serde(flatten)]
    pub target: TargetReport,
    /// Newest first.
    pub items: Vec<SummaryReport>,
    /// More invalidations exist than `--max-items` let through.
    pub truncated: bool,
}

/// One row of `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryReport {
    pub id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

impl From<&InvalidationSummary> for SummaryReport {
    fn from(s: &InvalidationSummary) -> Self {
        Self {
            id: s.id.clone(),
            status: status_str(&s.status).to_owned(),
            create_time: s.create_time.map(|t| t.to_string()),
        }
    }
}

/// The text form of `list`: a table like the console's, newest first.
pub fn list_text(r: &ListReport) -> String {
    let rows: Vec<[String; 3]> = r
        .items
        .iter()
        .map(|i| {
            let created = i.create_time.as_deref().map_or_else(String::new, |t| {
                t.parse::<Timestamp>()
                    .map_or_else(|_| t.to_owned(), |t| text_time(&t))
            });
            [i.id.clone(), i.status.clone(), created]
        })
        .collect();
    let header = ["ID".to_owned(), "STATUS".to_owned(), "CREATED".to_owned()];
    let width = |col: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!("{:<w0$}  {:<w1$}  {}", row[0], row[1], row[2]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Prints a result on stdout, as text or as one line of JSON, and flushes.
pub fn emit<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce(&T) -> String) {
    let body = match format {
        OutputFormat::Text => text(value),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).expect("reports serialize to JSON");
            s.push('\n');
            s
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(body.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests;
