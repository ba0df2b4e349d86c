//! Leader election on a coordination.k8s.io Lease, through the maintained `kube-lease-manager`
//! crate. Only the leader reconciles; standbys wait. A duplicate invalidation cannot come out of
//! a handover anyway: both replicas would send the same CallerReference.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

/// Lease timing. A standby takes over at most `duration` seconds after the leader stopped
/// renewing (plus one API round trip); the leader renews `grace` seconds before expiry.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
}

pub struct LeaderElection {
    state: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl LeaderElection {
    pub async fn start(client: Client, settings: &LeaseSettings) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration_seconds)
            .with_grace(settings.grace_seconds)
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity,
              "leader election started");
        Ok(Self { state, task })
    }

    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Resolves when this replica holds the lease.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        self.state.wait_for(|leader| *leader).await?;
        Ok(())
    }

    /// Resolves when this replica no longer holds the lease.
    pub async fn lost(&mut self) -> anyhow::Result<()> {
        self.state.wait_for(|leader| !*leader).await?;
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
