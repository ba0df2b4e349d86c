//! Support of the node e2e suite (`tests/node_e2e.rs`): the cluster guard around
//! `scripts/node-cluster`, the images from `scripts/node-images`, Helm and kubectl from
//! `scripts/chart-check --tools`, plain HTTP to ClusterIPs, and reading the Dockerfile.
//!
//! Everything is synchronous: the suite drives external programs (helm, kubectl, ctr) and
//! waits; it needs no async runtime.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to its end, with a deadline: (success, stdout, stderr).
pub fn run(cmd: &mut Command, timeout: Duration) -> (bool, String, String) {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {timeout:?}; stderr so far:\n{}",
                err_t.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    )
}

/// Polls `check` every 500 ms until it returns `Ok`; fails the test after `timeout` with the
/// last reason.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) if started.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Whether this machine can run the suite
// ------------------------------------------------------------------------------------------

/// `None` when the suite can run here; otherwise why not. With `NODE_E2E=required` (CI) a
/// reason fails the test instead of skipping it.
pub fn cannot_run_here() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (the cluster needs a bridge, iptables, mounts and cgroups)".into());
    }
    if !Path::new("/etc/debian_version").exists() {
        return Some("not Debian (the runtime comes from Debian packages)".into());
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        return Some("no cgroup v2 hierarchy at /sys/fs/cgroup/unified".into());
    }
    None
}

// ------------------------------------------------------------------------------------------
// The cluster
// ------------------------------------------------------------------------------------------

/// The single-node cluster, started fresh and always stopped: `Drop` runs `scripts/node-cluster
/// stop`, also when a case panics, so no run leaves bridges, rules or mounts behind.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubectl: Kubectl,
    pub helm: Helm,
    pub started_in: Duration,
}

fn node_cluster(args: &[&str], timeout: Duration) -> (bool, String, String) {
    run(
        Command::new(repo().join("scripts/node-cluster")).args(args),
        timeout,
    )
}

impl Cluster {
    /// Stops whatever a crashed run may have left, starts a fresh cluster, puts this test process
    /// into the cluster's cgroup (so that its own connections, and helm's and kubectl's, are
    /// guarded and audited too) and imports `images`.
    pub fn start(tools: &Path, images: &[Image]) -> Cluster {
        let (ok, _, err) = node_cluster(&["stop"], Duration::from_secs(120));
        assert!(
            ok,
            "scripts/node-cluster stop (before starting) failed:\n{err}"
        );
        let started = Instant::now();
        let (ok, out, err) = node_cluster(&["start"], Duration::from_secs(600));
        assert!(ok, "scripts/node-cluster start failed:\n{err}");
        let started_in = started.elapsed();
        let dir = PathBuf::from(out.trim());
        let cluster = Cluster {
            kubectl: Kubectl::new(tools, &dir.join("conf/admin.kubeconfig")),
            helm: Helm::new(tools, &dir.join("conf/admin.kubeconfig")),
            dir,
            started_in,
        };
        let pid = std::process::id().to_string();
        let (ok, _, err) = node_cluster(&["enter", &pid], Duration::from_secs(30));
        assert!(ok, "scripts/node-cluster enter failed:\n{err}");
        let tars: Vec<&str> = images
            .iter()
            .map(|i| i.tar.to_str().expect("utf-8"))
            .collect();
        let mut args = vec!["import"];
        args.extend(tars);
        let (ok, _, err) = node_cluster(&args, Duration::from_secs(120));
        assert!(ok, "scripts/node-cluster import failed:\n{err}");
        eprintln!(
            "[node-e2e] cluster Ready in {:.1?} ({}), images imported",
            cluster.started_in,
            cluster.dir.display()
        );
        cluster
    }

    /// The network audit over everything since `start` (scripts/node-cluster audit): fails
    /// the test when any connection of the cluster (its processes, its pods, this test and
    /// its helm/kubectl) went outside 127.0.0.0/8, ::1, the pod and the service ranges, or
    /// when a guard dropped a packet. Returns the audit's report.
    pub fn audit(&self) -> String {
        let (ok, out, err) = node_cluster(&["audit"], Duration::from_secs(60));
        assert!(ok, "the network audit failed:\n{out}{err}");
        out
    }

    /// The PID (on the host) of a container, from containerd.
    pub fn container_pid(&self, container_id: &str) -> u32 {
        let id = container_id.trim_start_matches("containerd://");
        let socket = self.dir.join("run/containerd.sock");
        let (ok, out, err) = run(
            Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["-n", "k8s.io", "task", "ls"]),
            Duration::from_secs(30),
        );
        assert!(ok, "ctr task ls failed: {err}");
        out.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(id)).then(|| f.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("containerd runs no task {id}:\n{out}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[node-e2e] a case failed: component logs are in {}/logs (kept until the next start)",
                self.dir.display()
            );
        }
        let (ok, _, err) = node_cluster(&["stop"], Duration::from_secs(180));
        if ok {
            eprintln!("[node-e2e] cluster stopped, host clean");
        } else {
            eprintln!("[node-e2e] !!! scripts/node-cluster stop FAILED; run it by hand:\n{err}");
            if !std::thread::panicking() {
                panic!("scripts/node-cluster stop failed:\n{err}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Images
// ------------------------------------------------------------------------------------------

/// One assembled image: its reference (`cfinv.local/NAME:TAG`) and its OCI tarball.
#[derive(Clone, Debug)]
pub struct Image {
    pub reference: String,
    pub tar: PathBuf,
}

impl Image {
    pub fn repository(&self) -> &str {
        self.reference.rsplit_once(':').expect("REPO:TAG").0
    }

    pub fn tag(&self) -> &str {
        self.reference.rsplit_once(':').expect("REPO:TAG").1
    }

    /// The image configuration (`config` of the OCI config blob), read from the tarball.
    pub fn config(&self) -> Value {
        let file = |name: &str| -> Vec<u8> {
            let out = Command::new("tar")
                .arg("-xOf")
                .arg(&self.tar)
                .arg(name)
                .output()
                .expect("tar");
            assert!(out.status.success(), "{} has no {name}", self.tar.display());
            out.stdout
        };
        let index: Value = serde_json::from_slice(&file("index.json")).expect("index.json");
        let blob = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
            serde_json::from_slice::<Value>(&file(&format!("blobs/sha256/{hex}")))
                .expect("JSON blob")
        };
        let manifest = blob(
            index["manifests"][0]["digest"]
                .as_str()
                .expect("manifest digest"),
        );
        let config = blob(
            manifest["config"]["digest"]
                .as_str()
                .expect("config digest"),
        );
        config["config"].clone()
    }
}

/// The images of `scripts/node-images build`: operator and simulator. `$NODE_E2E_IMAGES` names
/// the list a previous build printed (scripts/node-e2e); otherwise they are built now.
pub fn images() -> (Image, Image) {
    let list = match std::env::var_os("NODE_E2E_IMAGES") {
        Some(path) => std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read NODE_E2E_IMAGES={}: {e}",
                PathBuf::from(path).display()
            )
        }),
        None => {
            eprintln!(
                "[node-e2e] NODE_E2E_IMAGES is not set: running scripts/node-images build (a release build)"
            );
            let (ok, out, err) = run(
                Command::new(repo().join("scripts/node-images")).arg("build"),
                Duration::from_secs(3600),
            );
            assert!(ok, "scripts/node-images build failed:\n{err}");
            out
        }
    };
    parse_image_list(&list)
}

/// "REFERENCE TARBALL" lines: the operator's first, then the simulator's.
pub fn parse_image_list(list: &str) -> (Image, Image) {
    let images: Vec<Image> = list
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, t)| Image {
            reference: r.to_owned(),
            tar: PathBuf::from(t.trim()),
        })
        .collect();
    let find = |name: &str| {
        images
            .iter()
            .find(|i| i.repository().ends_with(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} image in {list:?}"))
    };
    (
        find("/cloudfront-invalidation-operator"),
        find("/cloudfront-sim"),
    )
}

/// The folder holding helm and kubectl: `$NODE_E2E_TOOLS`, else `scripts/chart-check --tools`.
pub fn tools() -> PathBuf {
    if let Some(dir) = std::env::var_os("NODE_E2E_TOOLS") {
        return PathBuf::from(dir);
    }
    let (ok, out, err) = run(
        Command::new(repo().join("scripts/chart-check")).arg("--tools"),
        Duration::from_secs(600),
    );
    assert!(ok, "scripts/chart-check --tools failed:\n{err}");
    PathBuf::from(out.trim())
}

// ------------------------------------------------------------------------------------------
// The Dockerfile
// ------------------------------------------------------------------------------------------

/// What one stage of the Dockerfile declares for its image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stage {
    pub name: Option<String>,
    pub base: String,
    pub user: Option<String>,
    pub exposed: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
}

/// The stages of a Dockerfile, in order (continuation lines joined, comments dropped).
pub fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        lines.push(std::mem::take(&mut current));
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines {
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let rest = rest.trim();
        let json_list = |s: &str| -> Vec<String> {
            serde_json::from_str(s)
                .unwrap_or_else(|_| panic!("Dockerfile: use the JSON form for {instr}: {s}"))
        };
        match instr.to_ascii_uppercase().as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    _ => None,
                };
                stages.push(Stage {
                    name,
                    base: words.first().copied().unwrap_or_default().to_owned(),
                    ..Stage::default()
                });
            }
            _ if stages.is_empty() => {}
            "USER" => stages.last_mut().unwrap().user = Some(rest.to_owned()),
            "EXPOSE" => stages
                .last_mut()
                .unwrap()
                .exposed
                .extend(rest.split_whitespace().map(|p| {
                    if p.contains('/') {
                        p.to_owned()
                    } else {
                        format!("{p}/tcp")
                    }
                })),
            "ENTRYPOINT" => stages.last_mut().unwrap().entrypoint = Some(json_list(rest)),
            "CMD" => stages.last_mut().unwrap().cmd = Some(json_list(rest)),
            "WORKDIR" => stages.last_mut().unwrap().workdir = Some(rest.to_owned()),
            _ => {}
        }
    }
    stages
}

/// The working directory of gcr.io/distroless/cc-debian12:nonroot (its image config), which a
/// stage without WORKDIR inherits. It cannot be pulled here to be read.
pub const DISTROLESS_NONROOT_WORKDIR: &str = "/home/nonroot";

/// Asserts that an assembled image's configuration says what the Dockerfile stage declares.
pub fn assert_image_matches_stage(image: &Image, stage: &Stage) {
    let config = image.config();
    let what = format!("{} vs. Dockerfile stage {:?}", image.reference, stage.name);
    assert_eq!(
        config["User"].as_str(),
        stage.user.as_deref(),
        "{what}: USER"
    );
    let entrypoint: Option<Vec<String>> = serde_json::from_value(config["Entrypoint"].clone()).ok();
    assert_eq!(entrypoint, stage.entrypoint, "{what}: ENTRYPOINT");
    let cmd: Option<Vec<String>> = serde_json::from_value(config["Cmd"].clone()).ok();
    assert_eq!(cmd, stage.cmd, "{what}: CMD");
    let mut exposed: Vec<String> = config["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    exposed.sort();
    let mut declared = stage.exposed.clone();
    declared.sort();
    assert_eq!(exposed, declared, "{what}: EXPOSE");
    let workdir = stage.workdir.clone().unwrap_or_else(|| {
        assert!(
            stage.base.starts_with("gcr.io/distroless/") && stage.base.ends_with(":nonroot"),
            "{what}: the stage declares no WORKDIR and its base {} is not a distroless nonroot image whose default is known",
            stage.base
        );
        DISTROLESS_NONROOT_WORKDIR.to_owned()
    });
    assert_eq!(
        config["WorkingDir"].as_str(),
        Some(workdir.as_str()),
        "{what}: WORKDIR"
    );
}

// ------------------------------------------------------------------------------------------
// kubectl and helm
// ------------------------------------------------------------------------------------------

/// kubectl v1.33 (scripts/chart-check's) against the cluster as admin.
#[derive(Clone, Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(tools: &Path, kubeconfig: &Path) -> Self {
        Self {
            bin: tools.join("kubectl"),
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s");
        cmd
    }

    /// (success, stdout, stderr).
    pub fn try_run(&self, args: &[&str]) -> (bool, String, String) {
        run(self.command().args(args), Duration::from_secs(120))
    }

    /// stdout; fails the test when kubectl fails.
    pub fn run(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_run(args);
        assert!(ok, "kubectl {} failed:\n{err}{out}", args.join(" "));
        out
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("manifest.yaml");
        std::fs::write(&file, manifest).expect("write manifest");
        let mut args = vec!["apply", "-f", file.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&all)).expect("kubectl printed JSON")
    }

    /// `kubectl get ... -o json` or `None` when it does not exist.
    pub fn get_opt(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json", "--ignore-not-found"]);
        let out = self.run(&all);
        (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("kubectl printed JSON"))
    }
}

/// Helm v4 (scripts/chart-check's), with a configuration and cache of its own.
pub struct Helm {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

/// What one helm run did.
#[derive(Debug)]
pub struct HelmRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Helm {
    pub fn new(tools: &Path, kubeconfig: &Path) -> Self {
        Self {
            bin: tools.join("helm"),
            kubeconfig: kubeconfig.to_owned(),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn try_run(&self, args: &[&str]) -> HelmRun {
        let h = self.home.path();
        let started = Instant::now();
        let (success, stdout, stderr) = run(
            Command::new(&self.bin)
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig)
                .env("HELM_CACHE_HOME", h.join("cache"))
                .env("HELM_CONFIG_HOME", h.join("config"))
                .env("HELM_DATA_HOME", h.join("data")),
            Duration::from_secs(900),
        );
        let took = started.elapsed();
        eprintln!(
            "[node-e2e] helm {} -> {} in {took:.1?}",
            args.join(" "),
            if success { "ok" } else { "FAILED" }
        );
        HelmRun {
            success,
            stdout,
            stderr,
            took,
        }
    }

    pub fn run(&self, args: &[&str]) -> HelmRun {
        let r = self.try_run(args);
        assert!(
            r.success,
            "helm {} failed:\n{}{}",
            args.join(" "),
            r.stderr,
            r.stdout
        );
        r
    }
}

// ------------------------------------------------------------------------------------------
// HTTP (from the host to ClusterIPs and pod IPs)
// ------------------------------------------------------------------------------------------

/// GET over plain HTTP: (status code, body), whatever the status.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        // Tests talk to our own addresses only: never through a proxy from the environment.
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
}

/// The sum of a metric's series whose labels contain all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(after) => match after.split_once('}') {
                Some(lv) => lv,
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
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

/// Counts by key.
pub fn tally<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}
