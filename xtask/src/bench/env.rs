//! The pieces every benchmark stands on: a real control plane with the CRD, the simulator, the
//! operator as a separate process (so its CPU and memory are its own), and helpers to create
//! objects and watch them finish.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use tokio::process::{Child, Command};

use cfinv_api::crd::{CloudFrontInvalidation, CloudFrontInvalidationSpec, Phase};
use cfinv_testenv::{ControlPlane, ControlPlaneOptions, ControlPlaneUser, test_namespace};

pub struct Env {
    _control_plane: ControlPlane,
    pub client: Client,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> anyhow::Result<Self> {
        let control_plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
        let client = control_plane.admin_client().await?;
        cfinv_testenv::install_crd(
            &client,
            <CloudFrontInvalidation as kube::CustomResourceExt>::crd(),
        )
        .await?;
        // Coalescing's batch records.
        cfinv_testenv::install_crd(
            &client,
            <cfinv_api::batch::CloudFrontInvalidationBatch as kube::CustomResourceExt>::crd(),
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        control_plane.write_kubeconfig(&kubeconfig, ControlPlaneUser::Admin)?;
        Ok(Self {
            _control_plane: control_plane,
            client,
            kubeconfig,
            _dir: dir,
        })
    }

    pub async fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        test_namespace(&self.client, prefix).await
    }

    /// Start `cloudfront-invalidation-operator run` watching one namespace.
    pub async fn operator(
        &self,
        namespace: &str,
        endpoint: &str,
        extra: &[String],
    ) -> anyhow::Result<Operator> {
        let port = free_port()?;
        let log = tempfile::NamedTempFile::new()?;
        let child = Command::new(operator_binary()?)
            .arg("run")
            .args(["--watch-namespace", namespace])
            .args(["--cloudfront-endpoint-url", endpoint])
            .args(["--http-bind-address", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "BENCHACCESSKEY")
            .env("AWS_SECRET_ACCESS_KEY", "bench-secret")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log.reopen()?)
            .kill_on_drop(true)
            .spawn()
            .context("starting the operator")?;
        let operator = Operator {
            child,
            port,
            _log: log,
        };
        operator.wait_ready().await?;
        Ok(operator)
    }
}

pub struct Operator {
    child: Child,
    port: u16,
    _log: tempfile::NamedTempFile,
}

impl Operator {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self
                .http("/readyz")
                .await
                .is_ok_and(|(code, _)| code == 200)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self._log.path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the operator did not become ready in 60 s; its log ends:\n{}",
            tail.join("\n")
        )
    }

    /// GET on the operator's HTTP port: (status, body).
    pub async fn http(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        conn.read_to_string(&mut out).await?;
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        Ok((code, body))
    }

    /// User + system CPU time the operator has used.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name (which may hold spaces) start after ") ".
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / clock_ticks_per_second())
    }

    /// Resident memory (VmRSS) and its peak (VmHWM), in bytes.
    pub fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The production binary the benchmarks measure: `$OPERATOR_BIN`, else its release build, which
/// Cargo brings up to date once per run (in `target/release/`, beside this tool's own profile).
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = std::env::var_os("OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    let own = std::env::current_exe()?;
    let target = own
        .parent()
        .and_then(|profile| profile.parent())
        .context("this tool does not run from a Cargo target folder; set OPERATOR_BIN")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "cloudfront-invalidation-operator",
        ])
        .status()
        .context("running cargo build for the operator")?;
    anyhow::ensure!(
        status.success(),
        "cargo build of the operator failed ({status})"
    );
    let path = target.join("release/cloudfront-invalidation-operator");
    anyhow::ensure!(
        path.is_file(),
        "{} is missing after the build",
        path.display()
    );
    Ok(BUILT.get_or_init(|| path).clone())
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on Linux for every architecture this runs on.
    100.0
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One object to create.
pub fn invalidation(name: &str, distribution: &str, paths: &[String]) -> CloudFrontInvalidation {
    CloudFrontInvalidation {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: CloudFrontInvalidationSpec {
            distribution_id: Some(distribution.to_owned()),
            distribution_tenant_id: None,
            paths: paths.iter().map(|p| p.as_str().into()).collect(),
            caller_reference: None,
            timeout_seconds: 3600,
            ttl_seconds_after_finished: None,
        },
        status: None,
    }
}

/// Create all objects, `parallel` at a time.
pub async fn create_all(
    client: &Client,
    namespace: &str,
    objects: Vec<CloudFrontInvalidation>,
    parallel: usize,
) -> anyhow::Result<()> {
    let api: Api<CloudFrontInvalidation> = Api::namespaced(client.clone(), namespace);
    stream::iter(objects)
        .map(|o| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &o).await }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// When each object was first seen finished, and how.
pub type Finished = HashMap<String, (Phase, Timestamp)>;

/// Watch a namespace and record the first time each object is seen Completed or Failed.
pub fn watch_finished(client: &Client, namespace: &str) -> Arc<Mutex<Finished>> {
    let finished = Arc::new(Mutex::new(Finished::new()));
    let api: Api<CloudFrontInvalidation> = Api::namespaced(client.clone(), namespace);
    let record = finished.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = events.next().await {
            let phase = obj.phase();
            if phase.is_terminal() {
                let now = Timestamp::now();
                record
                    .lock()
                    .expect("finished lock")
                    .entry(obj.name_any())
                    .or_insert((phase, now));
            }
        }
    });
    finished
}

/// Wait until `n` objects have finished.
pub async fn wait_finished(
    finished: &Arc<Mutex<Finished>>,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Finished> {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = finished.lock().expect("finished lock").clone();
        if snapshot.len() >= n {
            return Ok(snapshot);
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} objects finished in {timeout:?}",
                snapshot.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scale a simulated duration to real time.
pub fn real(simulated: Duration, scale: f64) -> Duration {
    simulated.div_f64(scale)
}

/// Duration as a flag value (`humantime` accepts `1234ms`).
pub fn flag(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}
