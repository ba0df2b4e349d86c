//! The local control plane (etcd + kube-apiserver) used by the integration tests and `sandbox`.
//!
//! These tests need the binaries (scripts/control-plane or KUBEBUILDER_ASSETS) and fail, never
//! skip, when they cannot be found.

use std::future::Future;
use std::time::Duration;

use cfinv_testenv::{ControlPlane, ControlPlaneOptions, ControlPlaneUser, test_namespace};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Port of a `scheme://127.0.0.1:<port>` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

async fn accepts(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// Retries `op` for up to 10 s: right after a restart a pooled connection may still be dead.
async fn eventually<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: still failing after 10 s: {e}"),
        }
    }
}

#[tokio::test]
async fn control_plane_serves_enforces_rbac_restarts_and_cleans_up() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(ControlPlaneOptions::default()).await?;
    let admin = cp.admin_client().await?;

    let version = admin.apiserver_version().await?;
    assert_eq!(version.git_version, cp.apiserver_version());

    // Admin (system:masters) can create; each test gets its own namespace.
    let ns = test_namespace(&admin, "ControlPlane_Test").await?;
    assert!(ns.starts_with("controlplane-test-"), "{ns}");
    let other = test_namespace(&admin, "ControlPlane_Test").await?;
    assert_ne!(ns, other);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces.get(&ns).await?;

    // The non-admin user is authenticated (403, not 401) but RBAC grants it nothing.
    let operator = cp.client_as(ControlPlaneUser::Operator).await?;
    let err = Api::<Namespace>::all(operator)
        .list(&ListParams::default())
        .await
        .expect_err("operator must not list namespaces");
    match &err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{err}");
            assert!(status.message.contains("\"operator\""), "{err}");
        }
        other => panic!("expected 403 Forbidden, got {other}"),
    }

    // A written kubeconfig works on its own and verifies the server certificate.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&path, ControlPlaneUser::Admin)?;
    let kubeconfig = Kubeconfig::read_from(&path)?;
    let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
    assert!(cluster.certificate_authority_data.is_some());
    assert_eq!(cluster.insecure_skip_tls_verify, None);
    let from_file = Client::try_from(
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?,
    )?;
    Api::<Namespace>::all(from_file).get(&ns).await?;

    // The apiserver comes back on the same port with the same data; old clients work again.
    let apiserver_port = port_of(&cp.server_url());
    cp.restart_apiserver().await?;
    assert_eq!(port_of(&cp.server_url()), apiserver_port);
    eventually("get namespace after apiserver restart", || {
        namespaces.get(&ns)
    })
    .await;

    // So does etcd: its data survives.
    cp.restart_etcd().await?;
    eventually("get namespace after etcd restart", || namespaces.get(&ns)).await;

    // Dropping it kills both processes and removes the temporary folder.
    let etcd_port = port_of(&cp.etcd_url());
    let data_dir = cp.data_dir().to_owned();
    assert!(accepts(apiserver_port).await && accepts(etcd_port).await);
    drop(cp);
    assert!(
        !accepts(apiserver_port).await,
        "kube-apiserver still listens"
    );
    assert!(!accepts(etcd_port).await, "etcd still listens");
    assert!(!data_dir.exists(), "{} not removed", data_dir.display());
    Ok(())
}

#[tokio::test]
async fn a_panicking_test_leaves_no_processes_behind() -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let cp = ControlPlane::start(ControlPlaneOptions::default())
            .await
            .expect("control plane starts");
        let _ = tx.send((
            port_of(&cp.server_url()),
            port_of(&cp.etcd_url()),
            cp.data_dir().to_owned(),
        ));
        panic!("a test fails while holding the control plane");
    });
    let panic = task.await.expect_err("the task panicked").into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert_eq!(message, "a test fails while holding the control plane");
    let (apiserver_port, etcd_port, data_dir) = rx.await?;
    assert!(
        !accepts(apiserver_port).await,
        "kube-apiserver still listens"
    );
    assert!(!accepts(etcd_port).await, "etcd still listens");
    assert!(!data_dir.exists(), "{} not removed", data_dir.display());
    Ok(())
}

#[tokio::test]
async fn missing_binaries_are_an_error_not_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let err = ControlPlane::start(ControlPlaneOptions {
        binaries: Some(dir.path().to_owned()),
        ..ControlPlaneOptions::default()
    })
    .await
    .expect_err("no binaries in an empty folder");
    assert!(err.to_string().contains("does not exist"), "{err:#}");
}

#[tokio::test]
async fn a_given_data_dir_is_kept_and_reused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = ControlPlaneOptions {
        data_dir: Some(dir.path().join("cp")),
        ..ControlPlaneOptions::default()
    };
    let first = ControlPlane::start(opts.clone()).await?;
    let ns = test_namespace(&first.admin_client().await?, "kept").await?;
    let admin_kubeconfig = first.kubeconfig(ControlPlaneUser::Admin);
    first.stop().await;
    assert!(dir.path().join("cp/etcd").is_dir(), "data dir removed");

    // New ports, same data, same token and certificate.
    let second = ControlPlane::start(opts).await?;
    Api::<Namespace>::all(second.admin_client().await?)
        .get(&ns)
        .await?;
    let again = second.kubeconfig(ControlPlaneUser::Admin);
    assert_eq!(
        again.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .certificate_authority_data,
        admin_kubeconfig.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .certificate_authority_data
    );
    Ok(())
}
