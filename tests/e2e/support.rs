//! Support shared by the end-to-end suite (`tests/e2e_*.rs`): a real control plane (etcd +
//! kube-apiserver) with the CRD installed, kubectl, the operator binary as a subprocess, and
//! polling helpers.
//!
//! Each test starts its own control plane ([`Env::start`]): nextest runs every test in its own
//! process, and a control plane starts in a few seconds, so sharing one across processes (a
//! daemon left behind by a setup script) is not worth its cleanup problems. Each test still uses
//! its own namespace, and each operator watches only that namespace unless the test says
//! otherwise. The tests FAIL, never skip, when the control plane cannot be started.
//!
//! Included by every `tests/e2e_*.rs` with `#[path = "e2e/support.rs"] mod support;`.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cfinv_testenv::{
    ControlPlane, ControlPlaneOptions, ControlPlaneUser, spawn_tied, test_namespace,
};
use cloudfront_sim::{Completion, InvalidationRecord, Simulator, SimulatorHandle};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The operator binary under test: this crate's, or `$E2E_OPERATOR_BIN` (e.g. a release build).
pub fn operator_bin() -> PathBuf {
    std::env::var_os("E2E_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cloudfront-invalidation-operator")))
}
/// The CRD's name.
pub const CRD_NAME: &str = "cloudfrontinvalidations.cloudfront.invalidation.io";
pub const BATCH_CRD_NAME: &str = "cloudfrontinvalidationbatches.cloudfront.invalidation.io";
/// Dummy AWS credentials: the simulator checks that requests are signed, not by whom.
pub const ACCESS_KEY_ID: &str = "AKIAE2ETESTKEYID0000";
pub const SECRET_ACCESS_KEY: &str = "e2e-test-secret-access-key";

/// The repository's root (for `crds/`, `deploy/`, `examples/`).
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

// ------------------------------------------------------------------------------------------
// Waiting
// ------------------------------------------------------------------------------------------

/// Polls `check` every 100 ms until it returns `Ok`, and returns that value. `Err` says why not
/// yet; after `timeout` the test fails with `what` and the last reason.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------------------------------
// The control plane
// ------------------------------------------------------------------------------------------

/// One test's world: a control plane with the CRD installed, kubeconfigs for both users, and a
/// folder for logs (kept, and its path printed, when the test fails).
pub struct Env {
    pub cp: ControlPlane,
    /// A kube client as `admin`.
    pub admin: kube::Client,
    /// kubectl as `admin`.
    pub kubectl: Kubectl,
    /// How long the control plane took to answer `/readyz`.
    pub control_plane_started_in: Duration,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Env {
    /// Starts etcd + kube-apiserver and installs the CRD. Panics (fails the test) with the
    /// reason, e.g. `scripts/control-plane`'s message, when that is not possible.
    pub async fn start() -> Env {
        Self::start_inner(true).await
    }

    /// [`start`](Self::start) without installing the CRD.
    pub async fn start_without_crd() -> Env {
        Self::start_inner(false).await
    }

    async fn start_inner(with_crd: bool) -> Env {
        let started = Instant::now();
        let cp = match ControlPlane::start(ControlPlaneOptions::default()).await {
            Ok(cp) => cp,
            Err(e) => panic!(
                "the end-to-end tests need a local control plane (etcd + kube-apiserver) and it \
                 could not be started:\n{e:#}"
            ),
        };
        let control_plane_started_in = started.elapsed();
        let dir = tempfile::Builder::new()
            .prefix("e2e-")
            .tempdir()
            .expect("cannot create a temporary folder");
        let root = dir.path().to_owned();
        for user in [ControlPlaneUser::Admin, ControlPlaneUser::Operator] {
            cp.write_kubeconfig(&root.join(format!("{}.kubeconfig", user.name())), user)
                .expect("cannot write a kubeconfig");
        }
        let admin = cp.admin_client().await.expect("admin client");
        let kubectl = Kubectl::new(&root, ControlPlaneUser::Admin);
        let crd_started = Instant::now();
        if with_crd {
            install_crd(&kubectl).await;
        }
        eprintln!(
            "[e2e] kube-apiserver {} ready in {:.1?}, CRD installed in {:.1?} (logs: {})",
            cp.apiserver_version(),
            control_plane_started_in,
            crd_started.elapsed(),
            root.display()
        );
        Env {
            cp,
            admin,
            kubectl,
            control_plane_started_in,
            dir: Some(dir),
            root,
        }
    }

    /// Whether the API server evaluates CEL `x-kubernetes-validations` (Kubernetes 1.25+).
    pub fn knows_cel(&self) -> bool {
        let minor: u32 = self
            .cp
            .apiserver_version()
            .trim_start_matches('v')
            .split('.')
            .nth(1)
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap_or(0);
        minor >= 25
    }

    /// The folder for this test's kubeconfigs and logs.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The kubeconfig of `user`.
    pub fn kubeconfig(&self, user: ControlPlaneUser) -> PathBuf {
        self.root.join(format!("{}.kubeconfig", user.name()))
    }

    /// kubectl as `user`.
    pub fn kubectl_as(&self, user: ControlPlaneUser) -> Kubectl {
        Kubectl::new(&self.root, user)
    }

    /// A fresh namespace `<prefix>-xxxxx`.
    pub async fn namespace(&self, prefix: &str) -> String {
        test_namespace(&self.admin, prefix)
            .await
            .expect("cannot create a test namespace")
    }

    /// The typed API of our resource in `namespace`, as admin.
    pub fn api(&self, namespace: &str) -> Api<CloudFrontInvalidation> {
        Api::namespaced(self.admin.clone(), namespace)
    }

    /// Options for an operator that talks to `sim` as `admin` and watches `namespace`.
    pub fn operator(&self, name: &str, sim: &SimulatorHandle, namespace: &str) -> OperatorOptions {
        OperatorOptions::new(
            name,
            self.kubeconfig(ControlPlaneUser::Admin),
            &sim.endpoint_url(),
        )
        .watch_namespace(namespace)
    }

    /// Binds the operator's ClusterRole from `deploy/rbac.yaml` (the chart rendered with its
    /// default values) to the user `operator`, exactly as the chart binds it to its
    /// ServiceAccount. Returns the ClusterRole's name.
    pub async fn bind_deploy_cluster_role_to_operator_user(&self) -> String {
        let text = std::fs::read_to_string(repo_path("deploy/rbac.yaml"))
            .expect("deploy/rbac.yaml (the operator's RBAC) is missing");
        let roles: Vec<Value> = yaml_documents(&text)
            .into_iter()
            .filter(|d| d["kind"] == "ClusterRole")
            .collect();
        assert_eq!(
            roles.len(),
            1,
            "deploy/rbac.yaml should hold exactly one ClusterRole"
        );
        let role = &roles[0];
        let name = role["metadata"]["name"]
            .as_str()
            .expect("ClusterRole name")
            .to_owned();
        self.kubectl
            .apply_json("", role)
            .await
            .expect_ok("apply the ClusterRole of deploy/rbac.yaml");
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{name}-e2e-operator-user")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "operator"}],
        });
        self.kubectl
            .apply_json("", &binding)
            .await
            .expect_ok("bind the ClusterRole to User operator");
        name
    }
}

impl Env {
    /// Creates a ClusterRole with `rules` and binds it to the user `operator`.
    pub async fn grant_operator_user(&self, role: &str, rules: Value) {
        let role_doc = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": rules,
        });
        self.kubectl
            .apply_json("", &role_doc)
            .await
            .expect_ok("apply a ClusterRole");
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "operator"}],
        });
        self.kubectl
            .apply_json("", &binding)
            .await
            .expect_ok("bind a ClusterRole to User operator");
    }

    /// The holder of a Lease, if the Lease exists and is held.
    pub async fn lease_holder(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, String> {
        let leases: Api<Lease> = Api::namespaced(self.admin.clone(), namespace);
        let lease = leases.get_opt(name).await.map_err(|e| e.to_string())?;
        Ok(lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty()))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "[e2e] test failed: kubeconfigs and operator logs kept in {}; kube-apiserver log: {}",
                kept.display(),
                self.cp.apiserver_log().display()
            );
        }
    }
}

/// Installs the CRD the way a user with kubectl would, on a server that does not know CEL.
///
/// What works against kube-apiserver v1.20 (tried by `crd_install_methods` in e2e_operator.rs):
/// a client-side `kubectl apply --validate=false` (or `kubectl create`), and the kube client's
/// create/replace (`crd::install`). The server drops `x-kubernetes-validations`. Plain
/// `kubectl apply` fails client-side validation (unknown field), and `--server-side` is refused
/// by the server's structured-merge schema.
async fn install_crd(kubectl: &Kubectl) {
    // Both CRDs of crds/: the objects, and the batch records coalescing writes.
    let crds = repo_path("crds");
    kubectl
        .run(&[
            "apply",
            "--validate=false",
            "-f",
            crds.to_str().expect("utf-8 path"),
        ])
        .await
        .expect_ok("install the CRDs");
    kubectl
        .run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/{CRD_NAME}"),
            &format!("crd/{BATCH_CRD_NAME}"),
        ])
        .await
        .expect_ok("wait for the CRDs to be Established");
}

/// Every YAML document of `text` as JSON (empty documents skipped).
pub fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

// ------------------------------------------------------------------------------------------
// kubectl
// ------------------------------------------------------------------------------------------

/// The preinstalled kubectl, with a kubeconfig and a discovery cache of its own.
#[derive(Clone, Debug)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

/// What one kubectl run printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub args: Vec<String>,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// stdout, or a test failure with kubectl's stderr.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(
            self.success,
            "{what}: kubectl {} failed:\n{}{}",
            self.args.join(" "),
            self.stderr,
            self.stdout
        );
        self.stdout
    }
}

impl Kubectl {
    pub fn new(dir: &Path, user: ControlPlaneUser) -> Self {
        Self {
            kubeconfig: dir.join(format!("{}.kubeconfig", user.name())),
            cache_dir: dir.join("kubectl-cache"),
        }
    }

    /// Runs `kubectl <args>` (60 s at most), feeding `stdin` if given.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.cache_dir.display()))
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("cannot run kubectl (is it installed?)");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let input = input.to_owned();
            tokio::spawn(async move {
                let _ = pipe.write_all(input.as_bytes()).await;
            });
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {} did not finish within 60 s", args.join(" ")))
            .expect("kubectl");
        KubectlOutput {
            args: args.iter().map(|s| s.to_string()).collect(),
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> KubectlOutput {
        self.run_with_stdin(args, None).await
    }

    /// `kubectl apply [-n namespace] -f -` of a YAML or JSON manifest.
    pub async fn apply(&self, namespace: &str, manifest: &str) -> KubectlOutput {
        let mut args = vec!["apply", "-f", "-"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        self.run_with_stdin(&args, Some(manifest)).await
    }

    pub async fn apply_json(&self, namespace: &str, manifest: &Value) -> KubectlOutput {
        self.apply(namespace, &manifest.to_string()).await
    }

    /// `kubectl <args> -o json`, parsed; fails the test if kubectl fails.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.run(&all).await.expect_ok("kubectl -o json");
        serde_json::from_str(&out).expect("kubectl printed JSON")
    }
}

// ------------------------------------------------------------------------------------------
// Manifests and objects
// ------------------------------------------------------------------------------------------

/// A CloudFrontInvalidation manifest (JSON, which kubectl takes as well as YAML).
pub fn manifest(name: &str, distribution: &str, paths: &[&str]) -> Value {
    serde_json::json!({
        "apiVersion": "cloudfront.invalidation.io/v1alpha1",
        "kind": "CloudFrontInvalidation",
        "metadata": {"name": name},
        "spec": {"distributionId": distribution, "paths": paths},
    })
}

/// Creates an object through the API (faster than a kubectl process when there are many).
pub async fn create(api: &Api<CloudFrontInvalidation>, manifest: &Value) -> CloudFrontInvalidation {
    let obj: CloudFrontInvalidation =
        serde_json::from_value(manifest.clone()).expect("manifest matches the type");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", manifest["metadata"]["name"]))
}

/// Creates an object, retrying for up to 30 s while the API server is unreachable (right after a
/// restart). An `AlreadyExists` answer means an earlier attempt got through.
pub async fn create_retrying(
    api: &Api<CloudFrontInvalidation>,
    manifest: &Value,
) -> CloudFrontInvalidation {
    let obj: CloudFrontInvalidation =
        serde_json::from_value(manifest.clone()).expect("manifest matches the type");
    let name = obj.metadata.name.clone().expect("a name");
    wait_for(
        &format!("creating {name}"),
        Duration::from_secs(30),
        || async {
            match api.create(&PostParams::default(), &obj).await {
                Ok(created) => Ok(created),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    api.get(&name).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// Waits until CloudFront's id is in the object's status and returns the object.
pub async fn wait_submitted(
    api: &Api<CloudFrontInvalidation>,
    name: &str,
    timeout: Duration,
) -> CloudFrontInvalidation {
    wait_for(&format!("{name} to be submitted"), timeout, || async {
        let obj = api.get(name).await.map_err(|e| e.to_string())?;
        match obj.status.as_ref().and_then(|s| s.invalidation_id.as_ref()) {
            Some(_) => Ok(obj),
            None => Err(format!("status {:?}", obj.status)),
        }
    })
    .await
}

/// Waits until the object has left the non-terminal phases and returns it, whichever terminal
/// phase it reached.
pub async fn wait_terminal(
    api: &Api<CloudFrontInvalidation>,
    name: &str,
    timeout: Duration,
) -> CloudFrontInvalidation {
    wait_for(&format!("{name} to finish"), timeout, || async {
        let obj = api.get(name).await.map_err(|e| e.to_string())?;
        if obj.phase().is_terminal() {
            Ok(obj)
        } else {
            Err(format!("phase {}, status {:?}", obj.phase(), obj.status))
        }
    })
    .await
}

/// Waits until the object is Completed (fails at once if it ends Failed).
pub async fn wait_completed(
    api: &Api<CloudFrontInvalidation>,
    name: &str,
    timeout: Duration,
) -> CloudFrontInvalidation {
    let obj = wait_terminal(api, name, timeout).await;
    assert_eq!(
        obj.phase(),
        Phase::Completed,
        "{name} ended {} instead of Completed: {:?}",
        obj.phase(),
        obj.status
    );
    obj
}

/// Waits until every named object is Completed.
pub async fn wait_all_completed(
    api: &Api<CloudFrontInvalidation>,
    names: &[String],
    timeout: Duration,
) -> Vec<CloudFrontInvalidation> {
    let what = format!("{} objects to complete", names.len());
    wait_for(&what, timeout, || async {
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for name in names {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            match obj.phase() {
                Phase::Completed => done.push(obj),
                Phase::Failed => {
                    return Ok(Err(format!("{name} Failed: {:?}", obj.status)));
                }
                p => pending.push(format!("{name}: {p}")),
            }
        }
        if pending.is_empty() {
            Ok(Ok(done))
        } else {
            Err(format!("not yet: {pending:?}"))
        }
    })
    .await
    .unwrap_or_else(|failed| panic!("{failed}"))
}

/// The condition `type_` of an object: (status, reason).
pub fn condition(obj: &CloudFrontInvalidation, type_: &str) -> Option<(String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The CallerReference the operator sends for an object.
pub fn caller_reference(obj: &CloudFrontInvalidation) -> String {
    obj.caller_reference().expect("object has a uid")
}

/// Asserts that `distribution` holds exactly one invalidation per object (matched by
/// CallerReference) and no other, and that each object's status names it. Returns the records
/// by object name.
pub fn assert_one_invalidation_per_object(
    sim: &SimulatorHandle,
    distribution: &str,
    objects: &[CloudFrontInvalidation],
) -> BTreeMap<String, InvalidationRecord> {
    let records = sim.invalidations(distribution);
    let mut by_name = BTreeMap::new();
    for obj in objects {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let reference = caller_reference(obj);
        let mine: Vec<&InvalidationRecord> = records
            .iter()
            .filter(|r| r.caller_reference == reference)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{name} (CallerReference {reference}) has {} invalidations in CloudFront: {mine:#?}",
            mine.len()
        );
        let id = obj.status.as_ref().and_then(|s| s.invalidation_id.clone());
        assert_eq!(
            id.as_deref(),
            Some(mine[0].id.as_str()),
            "{name}: status.invalidationId is not CloudFront's id"
        );
        by_name.insert(name, mine[0].clone());
    }
    assert_eq!(
        records.len(),
        objects.len(),
        "{distribution} holds invalidations nobody asked for: {records:#?}"
    );
    by_name
}

/// A simulator knowing `distributions`, completing every invalidation `completion` after it
/// was created (real time).
pub async fn simulator(distributions: &[&str], completion: Duration) -> SimulatorHandle {
    Simulator::builder()
        .distributions(distributions.iter().copied())
        .completion(Completion::Fixed(completion))
        .start()
        .await
        .expect("cannot start the CloudFront simulator")
}

// ------------------------------------------------------------------------------------------
// The operator process
// ------------------------------------------------------------------------------------------

/// How to run one operator process.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl OperatorOptions {
    /// `run` against `endpoint` with short poll and retry intervals, JSON logs, the HTTP
    /// endpoint on a free port, dummy credentials and `RUST_LOG=info,<crate>=debug`.
    pub fn new(name: &str, kubeconfig: PathBuf, endpoint: &str) -> Self {
        let args = [
            "--log-format=json",
            "run",
            "--cloudfront-endpoint-url",
            endpoint,
            "--http-bind-address=127.0.0.1:0",
            "--poll-min-interval=200ms",
            "--poll-max-interval=1s",
            "--retry-base-delay=100ms",
            "--retry-max-delay=1s",
        ]
        .map(String::from)
        .to_vec();
        let env = [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("RUST_LOG", "info,cloudfront_invalidation_operator=debug"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        Self {
            name: name.to_owned(),
            kubeconfig,
            args,
            env,
        }
    }

    pub fn watch_namespace(self, namespace: &str) -> Self {
        self.arg(format!("--watch-namespace={namespace}"))
    }

    /// Watch every namespace (drops a `--watch-namespace`).
    pub fn all_namespaces(mut self) -> Self {
        self.args.retain(|a| !a.starts_with("--watch-namespace="));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets `--flag=value`, replacing a value the defaults already give it.
    pub fn set(mut self, flag: &str, value: &str) -> Self {
        let prefix = format!("{flag}=");
        self.args.retain(|a| !a.starts_with(&prefix));
        self.args.push(format!("{flag}={value}"));
        self
    }

    /// Sets (or replaces) an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn kubeconfig(mut self, path: PathBuf) -> Self {
        self.kubeconfig = path;
        self
    }
}

/// A running operator. Killed (SIGKILL) when dropped; its log is printed when the test fails.
pub struct Operator {
    opts: OperatorOptions,
    child: Option<Child>,
    log: PathBuf,
    home: PathBuf,
    /// Where the current run's output starts in the log.
    run_offset: usize,
    addr: Option<SocketAddr>,
    /// How many times it was started.
    pub starts: u32,
}

impl Operator {
    /// Starts it and waits until its HTTP endpoint listens.
    pub async fn start(env: &Env, opts: OperatorOptions) -> Operator {
        let log = env.dir().join(format!("operator-{}.log", opts.name));
        let home = env.dir().join(format!("home-{}", opts.name));
        std::fs::create_dir_all(&home).expect("operator home");
        let mut op = Operator {
            opts,
            child: None,
            log,
            home,
            run_offset: 0,
            addr: None,
            starts: 0,
        };
        op.spawn().await;
        op
    }

    async fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "operator {} already running",
            self.opts.name
        );
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("operator log file");
        self.run_offset = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let mut cmd = std::process::Command::new(operator_bin());
        cmd.args(&self.opts.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No ~/.aws or ~/.kube of the machine can leak in.
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.opts.kubeconfig)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = spawn_tied(cmd).expect("cannot start the operator binary");
        self.child = Some(child);
        self.starts += 1;
        self.addr = None;
        let started = Instant::now();
        let addr = loop {
            if let Some(status) = self.exit_status() {
                panic!(
                    "operator {} exited ({status}) while starting:\n{}",
                    self.opts.name,
                    self.log_tail(40)
                );
            }
            let serving = self.current_json_lines().iter().find_map(|l| {
                let message = l["message"].as_str()?;
                if !message.starts_with("serving /metrics") {
                    return None;
                }
                l["address"].as_str()?.parse::<SocketAddr>().ok()
            });
            if let Some(addr) = serving {
                break addr;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "operator {} did not serve /metrics within 30 s:\n{}",
                self.opts.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.addr = Some(addr);
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if it exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL, as in a crash or an OOM kill, and reap it.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            wait_child(&mut child, Duration::from_secs(10)).await;
        }
    }

    /// Starts it again with the same options (a new HTTP port).
    pub async fn restart(&mut self) {
        self.kill9().await;
        self.spawn().await;
    }

    /// Sends SIGTERM and waits up to `timeout` for it to exit; `None` if it did not.
    pub async fn sigterm(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("operator is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = wait_child(child, timeout).await;
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// The whole log (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Every log line (all runs) parsed as JSON; lines that are not JSON are returned as
    /// `{"unparsed": line}`.
    pub fn json_lines(&self) -> Vec<Value> {
        parse_lines(&self.log())
    }

    fn current_json_lines(&self) -> Vec<Value> {
        let log = self.log();
        parse_lines(log.get(self.run_offset..).unwrap_or_default())
    }

    /// The address of its `/metrics`, `/healthz` and `/readyz`.
    pub fn http_addr(&self) -> SocketAddr {
        self.addr.expect("operator is running")
    }

    /// GET `path` on its HTTP endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.http_addr(), path).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").await.expect("GET /metrics");
        assert_eq!(code, 200, "/metrics answered {code}: {body}");
        body
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_for(
            &format!("operator {} to be ready", self.opts.name),
            Duration::from_secs(30),
            || async {
                match self.get("/readyz").await? {
                    (200, _) => Ok(()),
                    (code, body) => Err(format!("{code} {body}")),
                }
            },
        )
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[e2e] ---- last lines of operator {} ({}) ----\n{}\n[e2e] ----",
                self.opts.name,
                self.log.display(),
                self.log_tail(60)
            );
        }
    }
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::json!({"unparsed": l})))
        .collect()
}

async fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------------------------------
// HTTP and metrics
// ------------------------------------------------------------------------------------------

/// GET over plain HTTP on loopback (the operator's endpoint): (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        let mut answer = agent
            .get(format!("http://{addr}{path}"))
            .call()
            .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
        let body = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {path} from {addr}: body: {e}"))?;
        Ok((answer.status().as_u16(), body))
    })
    .await
    .map_err(|e| format!("GET task: {e}"))?
}

/// The sum of every series of `name` (`name` or `name{labels}`) whose labels contain all of
/// `labels` (`key="value"` strings); `None` if there is no such series.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(after) = rest.strip_prefix('{') {
            let Some((l, v)) = after.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if !labels
            .iter()
            .all(|l| label_text.split(',').any(|x| x == *l))
        {
            continue;
        }
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Debug-prints a value for assertion messages.
pub fn dbg_json<T: Debug>(v: &T) -> String {
    format!("{v:#?}")
}
