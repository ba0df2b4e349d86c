//! A real, local Kubernetes control plane: `etcd` plus `kube-apiserver` as two child processes,
//! no nodes, no controller-manager (the way controller-runtime's envtest does it).
//!
//! Used by the integration tests, the sandbox and the benchmarks (`cargo xtask`); never shipped.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cfinv_testenv::{ControlPlane, ControlPlaneOptions, ControlPlaneUser, test_namespace};
//! let cp = ControlPlane::start(ControlPlaneOptions::default()).await?;
//! let admin = cp.admin_client().await?;
//! let ns = test_namespace(&admin, "my-test").await?;
//! let operator = cp.client_as(ControlPlaneUser::Operator).await?; // RBAC applies to this one
//! # let _ = (ns, operator); Ok(()) }
//! ```
//!
//! Binaries come from [`ControlPlaneOptions::binaries`], else `$KUBEBUILDER_ASSETS`, else the
//! repository's `scripts/control-plane` (see [`locate_binaries`]). The apiserver authenticates
//! with static tokens: [`ControlPlaneUser::Admin`] is in `system:masters`,
//! [`ControlPlaneUser::Operator`] is an ordinary user (only `system:authenticated`) for RBAC tests.
//! Both processes are SIGKILLed and the temporary folder removed when the [`ControlPlane`] is
//! dropped (also while a test panics); on Linux they also die with the process that started them.

mod crd_install;
mod process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{
    AuthInfo, Cluster, Context as KubeContext, KubeConfigOptions, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};

pub use crd_install::install_crd;
use process::{APISERVER, ETCD, Proc};
pub use process::{locate_binaries, spawn_tied};

/// How to start a [`ControlPlane`]. `ControlPlaneOptions::default()` is what tests want.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Folder holding `etcd` and `kube-apiserver`; `None`: [`locate_binaries`].
    pub binaries: Option<PathBuf>,
    /// Folder for etcd data, certificates, keys, tokens and logs. `None`: a temporary folder,
    /// removed on drop. A given folder is kept, and its data, keys and tokens are reused by the
    /// next start (ports are always new).
    pub data_dir: Option<PathBuf>,
    /// How long to wait for `/readyz` (default 60 s).
    pub ready_timeout: Duration,
    /// Extra `kube-apiserver` flags, e.g. `--feature-gates=...`.
    pub extra_apiserver_args: Vec<String>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            binaries: None,
            data_dir: None,
            ready_timeout: Duration::from_secs(60),
            extra_apiserver_args: Vec::new(),
        }
    }
}

/// The two users the apiserver knows (static token authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlPlaneUser {
    /// `admin`, group `system:masters`: may do anything, RBAC does not apply.
    Admin,
    /// `operator`, no groups besides `system:authenticated`: may do nothing until RBAC allows it.
    Operator,
}

impl ControlPlaneUser {
    /// The user name the apiserver sees (`admin` or `operator`).
    pub fn name(self) -> &'static str {
        match self {
            ControlPlaneUser::Admin => "admin",
            ControlPlaneUser::Operator => "operator",
        }
    }
}

/// A running etcd + kube-apiserver pair on free loopback ports. See the [module docs](self).
pub struct ControlPlane {
    root: PathBuf,
    etcd: Proc,
    apiserver: Proc,
    etcd_port: u16,
    apiserver_port: u16,
    apiserver_version: String,
    admin_token: String,
    operator_token: String,
    /// PEM of the apiserver's self-signed serving certificate (followed by its CA).
    ca_pem: Option<String>,
    ready_timeout: Duration,
    /// Last field: removed only after `Drop::drop` killed the processes.
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server_url())
            .field("apiserver_version", &self.apiserver_version)
            .field("data_dir", &self.root)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers `ok`.
    ///
    /// On failure the error holds the last lines of the failing process's log. A port taken by
    /// someone else between choosing and binding it is retried with new ports.
    pub async fn start(opts: ControlPlaneOptions) -> anyhow::Result<ControlPlane> {
        let binaries = match &opts.binaries {
            Some(dir) => dir.clone(),
            None => locate_binaries().await?,
        };
        for binary in [ETCD, APISERVER] {
            let path = binaries.join(binary);
            if !path.is_file() {
                bail!("{} does not exist", path.display());
            }
        }
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &opts).await {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(binaries: &Path, opts: &ControlPlaneOptions) -> anyhow::Result<Self> {
        let (root, temp) = match &opts.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("control-plane-")
                    .tempdir()
                    .context("cannot create a temporary folder")?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        for sub in ["etcd", "certs", "auth", "logs"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("cannot create {}", root.join(sub).display()))?;
        }
        restrict(&root.join("etcd"), 0o700)?;
        let (admin_token, operator_token) = tokens(&root.join("auth/tokens.csv"))?;
        let (sa_key, sa_pub) = service_account_keys(&root.join("auth"))?;

        let etcd_bin = binaries.join(ETCD);
        let apiserver_bin = binaries.join(APISERVER);
        let (etcd_version, apiserver_version) = tokio::try_join!(
            process::version_line(&etcd_bin),
            process::version_line(&apiserver_bin)
        )?;
        let [etcd_port, peer_port, apiserver_port] = process::free_ports::<3>()?;

        let path = |p: &Path| p.display().to_string();
        let mut etcd_args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", path(&root.join("etcd"))),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
        ];
        if process::major_minor(&etcd_version).is_some_and(|v| v >= (3, 5)) {
            // Not in etcd 3.4; a throwaway store needs no fsync.
            etcd_args.push("--unsafe-no-fsync=true".to_owned());
        }
        let mut apiserver_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--secure-port={apiserver_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            // Without it the apiserver looks for a host IP (none in some sandboxes).
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--cert-dir={}", path(&root.join("certs"))),
            format!("--token-auth-file={}", path(&root.join("auth/tokens.csv"))),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", path(&sa_pub)),
            format!("--service-account-signing-key-file={}", path(&sa_key)),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            // No controller-manager creates `default` service accounts, so Pods could not be
            // created with this plugin on (envtest does the same).
            "--disable-admission-plugins=ServiceAccount".to_owned(),
        ];
        apiserver_args.extend(opts.extra_apiserver_args.iter().cloned());

        let logs = root.join("logs");
        let mut cp = ControlPlane {
            etcd: Proc::new(ETCD, etcd_bin, etcd_args, logs.join("etcd.log")),
            apiserver: Proc::new(
                APISERVER,
                apiserver_bin,
                apiserver_args,
                logs.join("kube-apiserver.log"),
            ),
            root,
            etcd_port,
            apiserver_port,
            apiserver_version: apiserver_version
                .split_whitespace()
                .last()
                .unwrap_or("unknown")
                .to_owned(),
            admin_token,
            operator_token,
            ca_pem: None,
            ready_timeout: opts.ready_timeout,
            _temp: temp,
        };
        cp.start_etcd().await?;
        cp.start_apiserver().await?;
        Ok(cp)
    }

    /// A client authenticated as [`ControlPlaneUser::Admin`].
    pub async fn admin_client(&self) -> anyhow::Result<kube::Client> {
        self.client_as(ControlPlaneUser::Admin).await
    }

    /// A client authenticated as `user`.
    pub async fn client_as(&self, user: ControlPlaneUser) -> anyhow::Result<kube::Client> {
        ensure_crypto_provider();
        let config = kube::Config::from_custom_kubeconfig(
            self.kubeconfig(user),
            &KubeConfigOptions::default(),
        )
        .await
        .context("kubeconfig of the control plane")?;
        kube::Client::try_from(config).context("building a client for the control plane")
    }

    /// A kubeconfig for `user` (token authentication). The server is verified against the
    /// apiserver's self-signed certificate (`certificate-authority-data`).
    pub fn kubeconfig(&self, user: ControlPlaneUser) -> Kubeconfig {
        let name = user.name().to_owned();
        let token = match user {
            ControlPlaneUser::Admin => &self.admin_token,
            ControlPlaneUser::Operator => &self.operator_token,
        };
        let cluster = Cluster {
            server: Some(self.server_url()),
            certificate_authority_data: self
                .ca_pem
                .as_ref()
                .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
            // Only while the certificate is not known yet (before the first `/readyz`).
            insecure_skip_tls_verify: self.ca_pem.is_none().then_some(true),
            ..Cluster::default()
        };
        Kubeconfig {
            api_version: Some("v1".to_owned()),
            kind: Some("Config".to_owned()),
            clusters: vec![NamedCluster {
                name: "control-plane".to_owned(),
                cluster: Some(cluster),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: name.clone(),
                auth_info: Some(AuthInfo {
                    token: Some(token.clone().into()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: Some(KubeContext {
                    cluster: "control-plane".to_owned(),
                    user: Some(name.clone()),
                    namespace: None,
                    ..KubeContext::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(name),
            ..Kubeconfig::default()
        }
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) for `user` to `path` (mode 0600), e.g. for kubectl.
    pub fn write_kubeconfig(&self, path: &Path, user: ControlPlaneUser) -> anyhow::Result<()> {
        let yaml = serde_norway::to_string(&self.kubeconfig(user))?;
        std::fs::write(path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
        restrict(path, 0o600)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// `http://127.0.0.1:<port>`: etcd's client URL (plain HTTP, no auth).
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// The apiserver's version, e.g. `v1.20.2`.
    pub fn apiserver_version(&self) -> &str {
        &self.apiserver_version
    }

    /// The folder holding etcd data, certificates, tokens and the logs (`logs/*.log`).
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// The kube-apiserver's log file (stdout and stderr of every start).
    pub fn apiserver_log(&self) -> &Path {
        &self.apiserver.log
    }

    /// The etcd log file.
    pub fn etcd_log(&self) -> &Path {
        &self.etcd.log
    }

    /// Kills the apiserver (SIGKILL, as in a crash); clients get connection errors until
    /// [`start_apiserver`](Self::start_apiserver).
    pub async fn stop_apiserver(&mut self) {
        self.apiserver.kill().await;
    }

    /// Starts the apiserver again (same port, certificate and data) and waits for `/readyz`.
    pub async fn start_apiserver(&mut self) -> anyhow::Result<()> {
        if self.apiserver.running() {
            return Ok(());
        }
        self.apiserver.kill().await; // forget a crashed one
        self.apiserver.spawn().await?;
        self.wait_ready().await
    }

    /// [`stop_apiserver`](Self::stop_apiserver) then [`start_apiserver`](Self::start_apiserver).
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        self.stop_apiserver().await;
        self.start_apiserver().await
    }

    /// Kills etcd and starts it again on the same port and data; waits until the apiserver is
    /// ready again.
    pub async fn restart_etcd(&mut self) -> anyhow::Result<()> {
        self.etcd.kill().await;
        self.start_etcd().await?;
        self.wait_ready().await
    }

    /// Kills both processes and starts them again (same ports and data).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.apiserver.kill().await;
        self.etcd.kill().await;
        self.start_etcd().await?;
        self.start_apiserver().await
    }

    /// Kills both processes, waits for them to be gone and removes the temporary folder.
    pub async fn stop(mut self) {
        self.apiserver.kill().await;
        self.etcd.kill().await;
    }

    async fn start_etcd(&mut self) -> anyhow::Result<()> {
        self.etcd.spawn().await?;
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Some(status) = self.etcd.exited() {
                bail!(
                    "etcd exited ({status}) while starting; last lines of {}:\n{}",
                    self.etcd.log.display(),
                    self.etcd.log_tail(30)
                );
            }
            if process::accepts(self.etcd_port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd did not listen on 127.0.0.1:{} within {:?}; last lines of {}:\n{}",
                    self.etcd_port,
                    self.ready_timeout,
                    self.etcd.log.display(),
                    self.etcd.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/readyz` as admin until it answers `ok`.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.apiserver.exited() {
                bail!(
                    "kube-apiserver exited ({status}) while starting; last lines of {}:\n{}",
                    self.apiserver.log.display(),
                    self.apiserver.log_tail(40)
                );
            }
            let last_error = match self.probe_readyz().await {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            if started.elapsed() > self.ready_timeout {
                bail!(
                    "kube-apiserver on {} not ready within {:?} (last: {last_error}); last lines of {}:\n{}",
                    self.server_url(),
                    self.ready_timeout,
                    self.apiserver.log.display(),
                    self.apiserver.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn probe_readyz(&mut self) -> anyhow::Result<()> {
        if self.ca_pem.is_none() {
            // The apiserver writes its self-signed certificate before it listens.
            let cert = self.root.join("certs/apiserver.crt");
            let pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("{} not written yet", cert.display()))?;
            if !pem.contains("-----END CERTIFICATE-----") {
                bail!("{} is incomplete", cert.display());
            }
            self.ca_pem = Some(pem);
        }
        let client = self.admin_client().await?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        let body = tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
            .await
            .context("/readyz timed out")??;
        if body.trim() != "ok" {
            bail!("/readyz answered {body:?}");
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.apiserver.kill_blocking();
        self.etcd.kill_blocking();
        // `_temp` (if any) is removed after this, when the fields are dropped.
    }
}

/// Installs rustls' `ring` provider (the one kube is built with) as the process default unless
/// one is installed already: both `ring` and `aws-lc-rs` (from the AWS SDK) are compiled in, so
/// rustls cannot pick one by itself and kube's client would panic.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: some provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Creates a namespace with a unique name `<prefix>-xxxxx` (server-side `generateName`) and
/// returns the name, so tests sharing one control plane never see each other's objects.
/// `prefix` is lower-cased and cut to a valid DNS label. (Without a controller-manager, deleted
/// namespaces stay `Terminating`; tests need not clean up.)
pub async fn test_namespace(client: &kube::Client, prefix: &str) -> anyhow::Result<String> {
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", dns_label_prefix(prefix))),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let created = namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("cannot create a test namespace {prefix:?}-*"))?;
    created
        .metadata
        .name
        .context("created namespace has no name")
}

/// `prefix` as the start of a DNS label: `[a-z0-9-]`, starting with a letter or digit, at most
/// 50 characters (the server appends 5 random ones).
fn dns_label_prefix(prefix: &str) -> String {
    let cleaned: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let trimmed: String = cleaned.trim_matches('-').chars().take(50).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "test".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `(admin, operator)` tokens: read from an existing token file, else generated and written.
fn tokens(file: &Path) -> anyhow::Result<(String, String)> {
    if let Ok(text) = std::fs::read_to_string(file) {
        let token_of = |user: &str| {
            text.lines()
                .map(|line| line.split(',').collect::<Vec<_>>())
                .find(|fields| fields.get(1) == Some(&user))
                .map(|fields| fields[0].to_owned())
        };
        if let (Some(admin), Some(operator)) = (token_of("admin"), token_of("operator")) {
            return Ok((admin, operator));
        }
    }
    let new_token = || format!("{:032x}", rand::random::<u128>());
    let (admin, operator) = (new_token(), new_token());
    // token,user,uid,"group1,group2"; every authenticated user also gets system:authenticated.
    let text = format!("{admin},admin,admin,system:masters\n{operator},operator,operator\n");
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    restrict(file, 0o600)?;
    Ok((admin, operator))
}

/// `(private, public)` PEM files of the service-account signing key (ECDSA P-256), generated once.
fn service_account_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (key, public) = (dir.join("sa.key"), dir.join("sa.pub"));
    if !(key.is_file() && public.is_file()) {
        let pair = rcgen::KeyPair::generate().context("cannot generate a key pair")?;
        std::fs::write(&key, pair.serialize_pem())?;
        restrict(&key, 0o600)?;
        std::fs::write(&public, pair.public_key_pem())?;
    }
    Ok((key, public))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes_are_dns_labels() {
        assert_eq!(dns_label_prefix("My_Test"), "my-test");
        assert_eq!(dns_label_prefix("--x--"), "x");
        assert_eq!(dns_label_prefix("ünïcode"), "n-code");
        assert_eq!(dns_label_prefix(""), "test");
        assert_eq!(dns_label_prefix(&"a".repeat(80)).len(), 50);
    }

    #[test]
    fn tokens_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.csv");
        let first = tokens(&file).unwrap();
        assert_ne!(first.0, first.1);
        assert_eq!(tokens(&file).unwrap(), first);
    }
}
