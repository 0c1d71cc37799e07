//! Cluster mode (`[cluster]`): joining the cluster database at start, and the follower that
//! keeps this node's settings and accounts those of the cluster — woken by PostgreSQL's
//! `NOTIFY` at every change, with a heartbeat that also compares generations, so a missed
//! notification costs at most one heartbeat.

use std::sync::Arc;
use std::time::Duration;

use rampart_settings::SharedSettings;
use rampart_store::{NodeInfo, Store, StoreError};
use tokio::sync::watch;

/// How often a node records its heartbeat (and checks the generations).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
/// Longest wait between two attempts to reach an unreachable cluster database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Joins the cluster database at start: migrations, seeding a new cluster with this node's
/// settings and accounts, and bringing the local copy up to the cluster's. Answers the
/// settings generation now in the local copy, or `None` when the database cannot be reached
/// (the node then starts on its last copy).
pub(crate) async fn join(store: &Store) -> Option<i64> {
    let joined = async {
        let seeded = store.cluster_join().await?;
        if seeded.0 {
            eprintln!(
                "rampart: the cluster database had no settings: this node's were copied into it"
            );
        }
        if seeded.1 {
            eprintln!(
                "rampart: the cluster database had no accounts: this node's were copied into it"
            );
        }
        store.cluster_pull(None).await
    }
    .await;
    match joined {
        Ok(pulled) => {
            let generation = pulled.settings.map(|(_, g)| g);
            if let Some(g) = generation {
                store.cluster_in_force(g);
            }
            generation
        }
        Err(e) => {
            eprintln!(
                "rampart: cannot reach the cluster database, starting on this node's last copy of the settings: {e}"
            );
            None
        }
    }
}

/// Follows the cluster database until `stop`: applies every settings change made on any node
/// and records this node's heartbeat.
pub(crate) async fn follow(
    store: Store,
    shared: SharedSettings,
    info: NodeInfo,
    mut in_force: Option<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut listener = match store.cluster_listen().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot listen for changes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        // Whatever changed while nobody listened.
        let _ = pull(&store, &shared, &mut in_force).await;
        beat(&store, &info).await;
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.reset();
        loop {
            tokio::select! {
                changed = listener.changed() => match changed {
                    // The heartbeat says at once which generation this node has in force.
                    Ok(true) => if pull(&store, &shared, &mut in_force).await {
                        beat(&store, &info).await;
                    },
                    // The connection dropped: listen anew and pull what was missed.
                    Ok(false) | Err(_) => break,
                },
                _ = tick.tick() => {
                    beat(&store, &info).await;
                    if pull(&store, &shared, &mut in_force).await {
                        beat(&store, &info).await;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

async fn beat(store: &Store, info: &NodeInfo) {
    if let Err(e) = store.cluster_heartbeat(info).await {
        tracing::debug!(error = %e, "cluster: heartbeat not recorded");
    }
}

/// Brings the settings in force up to the cluster's, if they differ; answers whether they did.
async fn pull(store: &Store, shared: &SharedSettings, in_force: &mut Option<i64>) -> bool {
    match store.cluster_pull(*in_force).await {
        Ok(pulled) => {
            if let Some(users) = pulled.users {
                tracing::debug!(generation = users, "cluster: accounts updated");
            }
            let Some((settings, generation)) = pulled.settings else {
                return false;
            };
            // Recorded even when refused below, so one bad set is reported once, not per beat.
            *in_force = Some(generation);
            match settings.compile() {
                Ok(snapshot) => {
                    shared.store(Arc::new(snapshot));
                    store.cluster_in_force(generation);
                    tracing::info!(generation, "cluster: settings in force");
                    true
                }
                Err(e) => {
                    tracing::error!(
                        generation,
                        error = %e,
                        "cluster: the cluster's settings are invalid here; keeping the previous ones"
                    );
                    false
                }
            }
        }
        Err(StoreError::Unavailable(_)) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot pull the settings");
            false
        }
    }
}

/// Events shipped per batch.
const SHIP_BATCH: u32 = 2000;
/// How often an idle shipper looks for new tracking events.
const SHIP_IDLE: Duration = Duration::from_millis(500);

/// Ships this node's message tracking to the cluster database until `stop`: at once while
/// there is a backlog, every half second otherwise, every 5 s while it cannot be reached.
pub(crate) async fn ship(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = match store.cluster_ship(SHIP_BATCH).await {
            Ok(s) if s.backlog > 0 => Duration::ZERO,
            Ok(_) => SHIP_IDLE,
            Err(StoreError::Unavailable(_)) => HEARTBEAT,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot ship tracking");
                HEARTBEAT
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
