//! Leader election on a coordination.k8s.io Lease, through the maintained `kube-lease-manager`
//! crate. Only the leader reconciles; standbys wait. A duplicate invalidation cannot come out of
//! a handover anyway: both replicas would send the same CallerReference.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

/// How often a standby looks whether the lease was released. kube-lease-manager itself sleeps
/// until the expiry it last read, so without this a clean shutdown of the leader would hand over
/// no faster than a crash.
const RELEASE_CHECK: Duration = Duration::from_secs(1);

/// Lease timing. A standby takes over at most `duration` seconds after the leader stopped
/// renewing (plus one API round trip), and within about a second when the leader released it;
/// the leader renews `grace` seconds before expiry.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
}

pub struct LeaderElection {
    client: Client,
    settings: LeaseSettings,
    state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl LeaderElection {
    pub async fn start(client: Client, settings: &LeaseSettings) -> anyhow::Result<Self> {
        let (state, task) = Self::manager(&client, settings).await?;
        info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity,
              "leader election started");
        Ok(Self {
            client,
            settings: settings.clone(),
            state,
            task,
        })
    }

    async fn manager(
        client: &Client,
        settings: &LeaseSettings,
    ) -> anyhow::Result<(
        watch::Receiver<bool>,
        JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    )> {
        let manager = LeaseManagerBuilder::new(client.clone(), &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration_seconds)
            .with_grace(settings.grace_seconds)
            .build()
            .await?;
        Ok(manager.watch().await)
    }

    /// Resolves when this replica holds the lease.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        loop {
            // The watch guard borrows `self.state`: reduce it to an owned result first.
            let acquired =
                tokio::time::timeout(RELEASE_CHECK, self.state.wait_for(|leader| *leader))
                    .await
                    .map(|r| r.map(|_| ()));
            match acquired {
                Ok(changed) => {
                    changed?;
                    return Ok(());
                }
                Err(_) => {
                    if self.released().await {
                        debug!("lease released by its holder, trying to take it now");
                        self.restart_manager().await?;
                    }
                }
            }
        }
    }

    /// Resolves when this replica no longer holds the lease.
    pub async fn lost(&mut self) -> anyhow::Result<()> {
        self.state.wait_for(|leader| !*leader).await?;
        Ok(())
    }

    /// Is the lease free (no holder)?
    async fn released(&self) -> bool {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        match api.get_opt(&self.settings.name).await {
            Ok(Some(lease)) => lease
                .spec
                .and_then(|s| s.holder_identity)
                .is_none_or(|h| h.is_empty()),
            Ok(None) => true,
            Err(e) => {
                debug!(error = %e, "could not read the lease");
                false
            }
        }
    }

    /// A fresh manager reads the lease at once instead of sleeping until the old expiry.
    async fn restart_manager(&mut self) -> anyhow::Result<()> {
        let (state, task) = Self::manager(&self.client, &self.settings).await?;
        let old_task = std::mem::replace(&mut self.task, task);
        drop(std::mem::replace(&mut self.state, state));
        // The old manager holds nothing (we were standby): its release is a no-op.
        old_task.abort();
        Ok(())
    }

    /// Give the lease up so a standby can take over at once instead of waiting for expiry.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => info!("lease released"),
            Ok(Err(e)) => warn!(error = %e, "could not release the lease; it expires by itself"),
            Err(e) => warn!(error = %e, "lease task failed"),
        }
    }
}
