//! `sandbox`: the whole product on one machine, with no cluster and no AWS account. A real
//! etcd + kube-apiserver, the CloudFront simulator and the operator, wired together; prints every
//! status transition until interrupted. It never touches the user's own kube context.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::Discovery,
    runtime::{WatchStreamExt, watcher},
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use cfinv_api::crd::CloudFrontInvalidation;
use cfinv_cloudfront::{AwsCloudFront, AwsOptions, CallCounter, Metered};
use cfinv_operator::controller::{
    self, Context, PollSettings, RetrySettings, Settings, WatchScope,
};
use cfinv_operator::health::Health;
use cfinv_operator::http;
use cfinv_operator::metrics::Metrics;
use cfinv_operator::run::shutdown_signal;
use cfinv_testenv::{ControlPlane, ControlPlaneOptions, ControlPlaneUser};
use cloudfront_sim::{Completion, Simulator};

/// Used when no manifest is given and `examples/basic.yaml` is not in the current folder.
const DEMO_MANIFEST: &str = include_str!("sandbox/demo.yaml");
const DEMO_DISTRIBUTION: &str = "EDEMO0SANDBOX1";

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Where to write the kubeconfig of the sandbox cluster.
    #[arg(long, default_value = "target/sandbox/kubeconfig")]
    pub kubeconfig: PathBuf,

    /// Manifests to apply once the operator runs (default: examples/basic.yaml).
    #[arg(long = "apply", value_name = "FILE")]
    pub apply: Vec<PathBuf>,

    /// Distributions the simulator knows, besides those named in the applied manifests.
    #[arg(long = "distribution", value_name = "ID")]
    pub distributions: Vec<String>,

    /// How long the simulator takes to complete an invalidation.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub completion_after: Duration,

    /// Where the simulator listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub simulator_listen: SocketAddr,

    /// Where the operator serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_bind_address: SocketAddr,

    /// Stop after every applied object has finished (for scripts and tests).
    #[arg(long)]
    pub exit_when_done: bool,
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let manifests = load_manifests(&args.apply)?;
    let mut distributions: BTreeSet<String> = args.distributions.iter().cloned().collect();
    distributions.extend(
        manifests
            .iter()
            .flat_map(|m| m.distributions.iter().cloned()),
    );

    say(
        "starting etcd and kube-apiserver (the first run on a machine builds them: 6-9 minutes, once)",
    );
    let control_plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
    let client = control_plane.admin_client().await?;
    if let Some(dir) = args.kubeconfig.parent() {
        std::fs::create_dir_all(dir)?;
    }
    control_plane.write_kubeconfig(&args.kubeconfig, ControlPlaneUser::Admin)?;
    say(&format!(
        "Kubernetes {} is up at {} ({:.1}s)",
        control_plane.apiserver_version(),
        control_plane.server_url(),
        started.elapsed().as_secs_f64()
    ));

    let simulator = Simulator::builder()
        .listen(args.simulator_listen)
        .distributions(distributions.iter().cloned())
        .completion(Completion::Fixed(args.completion_after))
        .start()
        .await?;
    say(&format!(
        "CloudFront simulator at {} knows distributions {}; invalidations complete after {}",
        simulator.endpoint_url(),
        distributions.iter().cloned().collect::<Vec<_>>().join(", "),
        humantime::format_duration(args.completion_after)
    ));

    cfinv_testenv::install_crd(
        &client,
        <CloudFrontInvalidation as kube::CustomResourceExt>::crd(),
    )
    .await?;
    let stop = CancellationToken::new();
    let operator = start_operator(&client, &simulator.endpoint_url(), &args, stop.clone()).await?;
    say(&format!(
        "operator running; /metrics at http://{}/metrics",
        args.http_bind_address
    ));

    let printer = tokio::spawn(print_transitions(client.clone(), started));
    let applied = apply_all(&client, &manifests).await?;
    let kubeconfig = args.kubeconfig.display();
    say(&format!(
        "applied {applied} object(s). From another terminal:\n\
         \n  kubectl --kubeconfig {kubeconfig} get cfinv -A\
         \n  kubectl --kubeconfig {kubeconfig} describe cfinv -A\
         \n  kubectl --kubeconfig {kubeconfig} apply -f examples/basic.yaml\
         \n  kubectl --kubeconfig {kubeconfig} wait --for=condition=Completed cfinv --all -A\n\
         \nPress Ctrl-C to stop."
    ));

    if args.exit_when_done {
        tokio::select! {
            r = all_finished(&client) => r?,
            () = shutdown_signal() => {},
        }
    } else {
        shutdown_signal().await;
    }
    stop.cancel();
    let _ = operator.await;
    printer.abort();
    simulator.shutdown().await;
    control_plane.stop().await;
    say("sandbox stopped");
    Ok(())
}

fn say(line: &str) {
    println!("sandbox: {line}");
}

/// The operator, in this process, pointed at the simulator with fast polling.
async fn start_operator(
    client: &Client,
    endpoint: &str,
    args: &SandboxArgs,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let aws = AwsCloudFront::new(&AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        // The simulator accepts any signature; these are not real credentials.
        static_credentials: Some(("SANDBOXACCESSKEY".into(), "sandbox-secret".into())),
        ..AwsOptions::default()
    })
    .await;
    let settings = Settings {
        poll: PollSettings {
            min_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(2),
            batch_interval: Some(Duration::from_millis(500)),
            ..PollSettings::default()
        },
        retry: RetrySettings {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        },
        queue_recheck: Duration::from_millis(500),
        follow_up: Duration::from_secs(10),
        ttl_after_finished: None,
        coalesce_window: None,
        coalesce_escalate: Default::default(),
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Arc::new(Metered::new(aws, CallCounter::with_sink(metrics.clone()))),
            settings,
        )
        .with_instance(Some("sandbox".into()))
        .with_metrics(metrics.clone()),
    );
    let server = http::serve(
        args.http_bind_address,
        metrics,
        health.clone(),
        stop.clone(),
    )
    .await?;
    Ok(tokio::spawn(async move {
        controller::run(
            ctx,
            WatchScope::AllNamespaces,
            16,
            health,
            stop.cancelled_owned(),
        )
        .await;
        let _ = server.await;
    }))
}

/// One manifest document, and the distributions it names.
struct Manifest {
    source: String,
    object: DynamicObject,
    distributions: Vec<String>,
}

fn load_manifests(files: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    let mut texts = Vec::new();
    if files.is_empty() {
        let basic = Path::new("examples/basic.yaml");
        match std::fs::read_to_string(basic) {
            Ok(text) => texts.push((basic.display().to_string(), text)),
            Err(_) => texts.push(("built-in demo".to_owned(), DEMO_MANIFEST.to_owned())),
        }
    }
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        texts.push((file.display().to_string(), text));
    }
    let mut manifests = Vec::new();
    for (source, text) in texts {
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(doc)
                .with_context(|| format!("{source}: not valid YAML"))?;
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_json::from_value(value.clone())
                .with_context(|| format!("{source}: not a Kubernetes object"))?;
            let distributions = value
                .pointer("/spec/distributionId")
                .and_then(|v| v.as_str())
                .filter(|_| value["kind"] == "CloudFrontInvalidation")
                .map(|d| vec![d.to_owned()])
                .unwrap_or_default();
            manifests.push(Manifest {
                source: source.clone(),
                object,
                distributions,
            });
        }
    }
    if manifests.iter().all(|m| m.distributions.is_empty()) {
        manifests
            .iter_mut()
            .for_each(|m| m.distributions.push(DEMO_DISTRIBUTION.to_owned()));
    }
    Ok(manifests)
}

/// Apply each document like `kubectl apply` would (server-side apply; create for
/// `generateName`), into `default` when it names no namespace.
async fn apply_all(client: &Client, manifests: &[Manifest]) -> anyhow::Result<usize> {
    let discovery = Discovery::new(client.clone()).run().await?;
    for m in manifests {
        let types = m
            .object
            .types
            .as_ref()
            .with_context(|| format!("{}: apiVersion and kind are required", m.source))?;
        let gvk = GroupVersionKind::try_from(types)?;
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("{}: the cluster does not serve {gvk:?}", m.source))?;
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => {
                let ns = m.object.namespace().unwrap_or_else(|| "default".to_owned());
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        match m.object.metadata.name.as_deref() {
            Some(name) => {
                let params = PatchParams::apply("cloudfront-invalidation-sandbox").force();
                api.patch(name, &params, &Patch::Apply(&m.object)).await?;
            }
            None => {
                api.create(&PostParams::default(), &m.object).await?;
            }
        }
    }
    Ok(manifests.len())
}

/// Print one line per phase change of any CloudFrontInvalidation.
async fn print_transitions(client: Client, started: Instant) {
    let api: Api<CloudFrontInvalidation> = Api::all(client);
    let mut phases: BTreeMap<String, String> = BTreeMap::new();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(Ok(obj)) = stream.next().await {
        let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        let phase = obj.phase().to_string();
        if phases.get(&key) == Some(&phase) {
            continue;
        }
        let message = obj
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        let from = phases.insert(key.clone(), phase.clone());
        let arrow = from.map(|f| format!("{f} -> ")).unwrap_or_default();
        println!(
            "{:>7.1}s  {key}: {arrow}{phase}  {message}",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Resolves once every CloudFrontInvalidation is Completed or Failed.
async fn all_finished(client: &Client) -> anyhow::Result<()> {
    let api: Api<CloudFrontInvalidation> = Api::all(client.clone());
    loop {
        let list = api.list(&Default::default()).await?;
        if !list.items.is_empty() && list.items.iter().all(|o| o.phase().is_terminal()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
