//! `wait`: block until CloudFrontInvalidations have finished, for pipelines and for the hook Job
//! of `charts/cloudfront-invalidation` (Helm waits for hook Jobs, never for custom resources).
//!
//! It reads the objects the operator writes, nothing else: a `watch` on
//! `cloudfrontinvalidations` (get/list/watch is all the RBAC it needs), in-cluster with the
//! Pod's ServiceAccount or with the kubeconfig outside. Exit codes as the other subcommands:
//! `0` every object Completed, `1` one Failed (its reason and message are printed) or cannot
//! finish (not found, deleted, no access), `4` the timeout passed first.

use std::collections::BTreeMap;
use std::time::Duration;

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use clap::Args;
use futures::StreamExt as _;
use kube::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::Exit;

/// Wait for CloudFrontInvalidations to finish (Completed: exit 0; Failed: exit 1 with the reason;
/// timeout: exit 4).
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("objects").required(true).args(["names", "selector"])))]
pub struct WaitArgs {
    /// Names of the CloudFrontInvalidations to wait for.
    #[arg(value_name = "NAME", conflicts_with = "selector")]
    pub names: Vec<String>,

    /// Wait for every CloudFrontInvalidation matching this label selector instead (those that
    /// exist when `wait` starts), e.g. `app.kubernetes.io/instance=web`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Namespace of the objects. Default: the kubeconfig context's, or the Pod's own in a
    /// cluster.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Give up after this long (exit 4), e.g. `90s`, `15m`. Keep it above the objects'
    /// `spec.timeoutSeconds`, so a slow CloudFront shows up as the object's own Failed/Timeout.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Where the awaited objects stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every object is Completed: (name, CloudFront's invalidation id).
    Completed(Vec<(String, Option<String>)>),
    /// This object Failed.
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    /// These objects have not finished yet: (name, what they are doing).
    Waiting(Vec<(String, String)>),
}

/// The phase an object's status describes, if that status is about the current spec (the
/// operator has observed this generation); `None` while the status is stale or absent.
fn current_phase(obj: &CloudFrontInvalidation) -> Option<Phase> {
    let status = obj.status.as_ref()?;
    let phase = status.phase?;
    match (obj.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) if observed < generation => None,
        _ => Some(phase),
    }
}

/// Judges the awaited objects (`wanted`, all present in `seen`): the first Failed one wins,
/// else Completed when all are, else Waiting.
pub(crate) fn assess(
    wanted: &[String],
    seen: &BTreeMap<String, CloudFrontInvalidation>,
) -> Verdict {
    let mut completed = Vec::new();
    let mut waiting = Vec::new();
    for name in wanted {
        let Some(obj) = seen.get(name) else {
            waiting.push((name.clone(), "not found".to_owned()));
            continue;
        };
        match current_phase(obj) {
            Some(Phase::Completed) => completed.push((
                name.clone(),
                obj.status.as_ref().and_then(|s| s.invalidation_id.clone()),
            )),
            Some(Phase::Failed) => {
                let status = obj.status.as_ref();
                let failed = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Failed"));
                let reason = failed
                    .map(|c| c.reason.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "Failed".to_owned());
                let message = status
                    .and_then(|s| s.message.clone())
                    .or_else(|| failed.map(|c| c.message.clone()))
                    .unwrap_or_default();
                return Verdict::Failed {
                    name: name.clone(),
                    reason,
                    message,
                };
            }
            Some(phase) => {
                let doing = match obj
                    .status
                    .as_ref()
                    .and_then(|s| s.invalidation_id.as_deref())
                {
                    Some(id) => format!("{phase} (invalidation {id})"),
                    None => phase.to_string(),
                };
                waiting.push((name.clone(), doing));
            }
            None => waiting.push((name.clone(), "waiting for the operator".to_owned())),
        }
    }
    if waiting.is_empty() {
        Verdict::Completed(completed)
    } else {
        Verdict::Waiting(waiting)
    }
}

/// A watch error that waiting cannot fix: no access, or no such resource (CRD not installed).
fn fatal_watch_error(err: &watcher::Error, namespace: &str) -> Option<String> {
    let response = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s,
        watcher::Error::WatchError(s) => s,
        _ => return None,
    };
    match response.code {
        401 | 403 => Some(format!(
            "not allowed to read cloudfrontinvalidations in namespace {namespace} (wait needs get, list and watch on them): {}",
            response.message
        )),
        404 => Some(format!(
            "the API server has no cloudfrontinvalidations in namespace {namespace}: is the CloudFrontInvalidation CRD installed? ({})",
            response.message
        )),
        _ => None,
    }
}

/// Runs `wait`. Progress goes to stderr; one line per object on stdout at the end.
pub async fn wait(args: WaitArgs) -> Exit {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot reach Kubernetes (no in-cluster config and no usable kubeconfig): {e}"
            );
            return Exit::Failed;
        }
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let api: Api<CloudFrontInvalidation> = Api::namespaced(client, &namespace);
    match tokio::time::timeout(args.timeout, watch_until_done(&api, &namespace, &args)).await {
        Ok(exit) => exit,
        Err(_) => {
            eprintln!(
                "error: timed out after {} waiting for {}",
                humantime::format_duration(args.timeout),
                describe(&args)
            );
            Exit::TimedOut
        }
    }
}

fn describe(args: &WaitArgs) -> String {
    match &args.selector {
        Some(s) => format!("the CloudFrontInvalidations matching {s}"),
        None => args.names.join(", "),
    }
}

async fn watch_until_done(
    api: &Api<CloudFrontInvalidation>,
    namespace: &str,
    args: &WaitArgs,
) -> Exit {
    let mut config = watcher::Config::default();
    if let Some(selector) = &args.selector {
        config = config.labels(selector);
    } else if let [name] = args.names.as_slice() {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut events = watcher(api.clone(), config).default_backoff().boxed();
    // The objects as last seen; `listing` holds a relist in progress.
    let mut seen: BTreeMap<String, CloudFrontInvalidation> = BTreeMap::new();
    let mut listing: BTreeMap<String, CloudFrontInvalidation> = BTreeMap::new();
    let mut wanted: Option<Vec<String>> = None;
    let mut last_report: BTreeMap<String, String> = BTreeMap::new();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(err) => {
                if let Some(message) = fatal_watch_error(&err, namespace) {
                    eprintln!("error: {message}");
                    return Exit::Failed;
                }
                eprintln!(
                    "warning: watching cloudfrontinvalidations in {namespace} failed, retrying: {err}"
                );
                continue;
            }
        };
        match event {
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitApply(obj) => {
                if let Some(name) = obj.metadata.name.clone() {
                    listing.insert(name, obj);
                }
            }
            watcher::Event::InitDone => {
                let relisted = std::mem::take(&mut listing);
                if let Some(wanted) = &wanted
                    && let Some(gone) = wanted.iter().find(|n| !relisted.contains_key(*n))
                {
                    eprintln!("error: {namespace}/{gone} was deleted before it finished");
                    return Exit::Failed;
                }
                seen = relisted;
                if wanted.is_none() {
                    let names: Vec<String> = match &args.selector {
                        Some(selector) => {
                            if seen.is_empty() {
                                eprintln!(
                                    "error: no CloudFrontInvalidation in namespace {namespace} matches {selector}"
                                );
                                return Exit::Failed;
                            }
                            seen.keys().cloned().collect()
                        }
                        None => args.names.clone(),
                    };
                    if let Some(missing) = names.iter().find(|n| !seen.contains_key(*n)) {
                        eprintln!("error: cloudfrontinvalidation {namespace}/{missing} not found");
                        return Exit::Failed;
                    }
                    wanted = Some(names);
                }
            }
            watcher::Event::Apply(obj) => {
                if let Some(name) = obj.metadata.name.clone() {
                    seen.insert(name, obj);
                }
            }
            watcher::Event::Delete(obj) => {
                let name = obj.metadata.name.clone().unwrap_or_default();
                if wanted.as_ref().is_some_and(|w| w.contains(&name)) {
                    eprintln!("error: {namespace}/{name} was deleted before it finished");
                    return Exit::Failed;
                }
                seen.remove(&name);
            }
        }
        let Some(wanted) = &wanted else { continue };
        match assess(wanted, &seen) {
            Verdict::Completed(done) => {
                for (name, id) in done {
                    match id {
                        Some(id) => println!("{namespace}/{name} Completed {id}"),
                        None => println!("{namespace}/{name} Completed"),
                    }
                }
                return Exit::Success;
            }
            Verdict::Failed {
                name,
                reason,
                message,
            } => {
                println!("{namespace}/{name} Failed {reason}");
                eprintln!("error: {namespace}/{name} Failed: {reason}: {message}");
                return Exit::Failed;
            }
            Verdict::Waiting(pending) => {
                for (name, doing) in pending {
                    if last_report.get(&name) != Some(&doing) {
                        eprintln!("{namespace}/{name}: {doing}");
                        last_report.insert(name, doing);
                    }
                }
            }
        }
    }
    eprintln!("error: the watch of cloudfrontinvalidations in {namespace} ended");
    Exit::Failed
}

#[cfg(test)]
mod tests;
