//! Child processes of the control plane: locating the binaries, spawning with log files,
//! killing, free ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Names of the two binaries, as in an envtest `KUBEBUILDER_ASSETS` folder.
pub(crate) const ETCD: &str = "etcd";
pub(crate) const APISERVER: &str = "kube-apiserver";

fn has_both(dir: &Path) -> bool {
    dir.join(ETCD).is_file() && dir.join(APISERVER).is_file()
}

/// Finds a folder holding `etcd` and `kube-apiserver`.
///
/// In order: `$KUBEBUILDER_ASSETS` if it holds both; else the script named by
/// `$CONTROL_PLANE_SCRIPT`, or this repository's `scripts/control-plane`, which prints the folder
/// (building it once on Debian, ~10 min; its progress is forwarded to stderr). The answer is
/// remembered for the rest of the process. Errors carry the script's own explanation.
pub async fn locate_binaries() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = FOUND.get() {
        return Ok(dir.clone());
    }
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from)
        && has_both(&dir)
    {
        return Ok(FOUND.get_or_init(|| dir).clone());
    }
    let script = match std::env::var_os("CONTROL_PLANE_SCRIPT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/control-plane"),
    };
    if !script.is_file() {
        bail!(
            "cannot locate etcd and kube-apiserver: {} does not exist. Set KUBEBUILDER_ASSETS to a \
             folder holding both (e.g. `export KUBEBUILDER_ASSETS=$(setup-envtest use -p path 1.30)`) \
             or CONTROL_PLANE_SCRIPT to the repository's scripts/control-plane",
            script.display()
        );
    }
    let mut child = Command::new(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", script.display()))?;
    // Forward the script's progress live (a cold build takes minutes) and keep it for the error.
    let stderr = child.stderr.take().expect("stderr is piped");
    let forward = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut kept = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            kept.push_str(&line);
            kept.push('\n');
        }
        kept
    });
    let output = child
        .wait_with_output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    let stderr = forward.await.unwrap_or_default();
    if !output.status.success() {
        bail!(
            "{} failed ({}), so there is no etcd/kube-apiserver to run:\n{}",
            script.display(),
            output.status,
            stderr.trim_end()
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !has_both(&dir) {
        bail!(
            "{} printed {:?}, which does not hold both {ETCD} and {APISERVER}",
            script.display(),
            dir
        );
    }
    Ok(FOUND.get_or_init(|| dir).clone())
}

/// `n` distinct loopback ports that were free a moment ago (all held at once, then released).
pub(crate) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot bind a free loopback port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub(crate) async fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// The first line of `<binary> --version`, e.g. `Kubernetes v1.20.2` or `etcd Version: 3.4.23`.
pub(crate) async fn version_line(binary: &Path) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `(major, minor)` out of a version line such as `Kubernetes v1.20.2` or `etcd Version: 3.4.23`.
pub(crate) fn major_minor(line: &str) -> Option<(u32, u32)> {
    let word = line.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = word.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// One child process with a fixed command line, restartable, logging to a file.
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    pub(crate) log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub(crate) fn new(
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        log: PathBuf,
    ) -> Self {
        Proc {
            name,
            program,
            args,
            log,
            child: None,
        }
    }

    /// Starts the process (appending stdout and stderr to the log file).
    pub(crate) async fn spawn(&mut self) -> anyhow::Result<()> {
        debug_assert!(self.child.is_none(), "{} is already running", self.name);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        {
            use std::io::Write as _;
            writeln!(
                log,
                "==== starting: {} {}",
                self.program.display(),
                self.args.join(" ")
            )?;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = spawn_tied_to_process(cmd)
            .await
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `Some(status)` if the process was started and has exited since.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Whether the process was started and has not exited.
    pub(crate) fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILLs the process and waits for it to be gone.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGKILLs the process and waits (briefly, blocking) for it to be gone: for `Drop`.
    pub(crate) fn kill_blocking(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// The last `lines` lines of the log file.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Spawns `cmd` so that the child is SIGKILLed by the kernel when this process dies, however it
/// dies (panic=abort, SIGKILL, a `ControlPlane` kept in a `static`): on Linux via
/// `PR_SET_PDEATHSIG`. Blocking; for tests that manage `std::process::Child`ren (the end-to-end
/// suite's operator processes). Elsewhere a plain spawn.
pub fn spawn_tied(mut cmd: std::process::Command) -> std::io::Result<std::process::Child> {
    die_with_this_process(&mut cmd);
    on_spawner_thread(move || cmd.spawn())?
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread dropped the job"))?
}

/// [`spawn_tied`] for a Tokio command, without blocking the runtime.
async fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    die_with_this_process(cmd.as_std_mut());
    // The child is registered with the runtime that spawns it.
    let runtime = tokio::runtime::Handle::current();
    let answer = on_spawner_thread(move || {
        let _runtime = runtime.enter();
        cmd.spawn()
    })?;
    tokio::task::spawn_blocking(move || answer.recv())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|_| std::io::Error::other("the spawner thread dropped the job"))?
}

#[cfg(target_os = "linux")]
fn die_with_this_process(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls the async-signal-safe
    // `prctl` and `getppid`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                // The parent already died between fork and prctl.
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_: &mut std::process::Command) {}

/// Runs `job` on one thread that lives as long as the process: `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked exits, so forks must not happen on a test's or a runtime's thread.
fn on_spawner_thread<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::sync::mpsc::Receiver<T>> {
    use std::sync::{Mutex, mpsc};
    type Job = Box<dyn FnOnce() + Send>;
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("process-spawner".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("cannot start the process-spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(job());
    });
    sender
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send(job)
        .map_err(|_| std::io::Error::other("the process-spawner thread is gone"))?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(major_minor("Kubernetes v1.20.2"), Some((1, 20)));
        assert_eq!(major_minor("Kubernetes v1.30.0-rc.1"), Some((1, 30)));
        assert_eq!(major_minor("etcd Version: 3.4.23"), Some((3, 4)));
        assert_eq!(major_minor(""), None);
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
    }
}
