//! Cluster mode as the *Cluster* page, `GET /api/v1/cluster` and `rampart clusterconfig` show
//! it: this node's view of the cluster database, and every node's last heartbeat.

use rampart_store::{ClusterHealth, NodeRow, Store, StoreError};
use serde_json::{Value, json};

use crate::api::rfc3339;

/// A node whose heartbeat is older than this is shown as not answering (heartbeats come every
/// 5 s).
pub const STALE_SECS: i64 = 30;

/// Everything the page and the API show.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub health: ClusterHealth,
    /// The cluster database's settings generation; `None` while it cannot be reached.
    pub generation: Option<i64>,
    /// Every node's last heartbeat; `None` while the cluster database cannot be reached.
    pub nodes: Option<Vec<NodeRow>>,
    pub now: i64,
}

impl ClusterView {
    /// `None` on a single appliance.
    pub async fn read(store: &Store) -> Result<Option<ClusterView>, StoreError> {
        if !store.is_clustered() {
            return Ok(None);
        }
        let generation = reachable(store.settings_generation().await)?;
        let nodes = reachable(store.cluster_nodes().await)?;
        // Read last, so it reflects the exchanges just made.
        let Some(health) = store.cluster_health() else {
            return Ok(None);
        };
        Ok(Some(ClusterView {
            health,
            generation,
            nodes,
            now: rampart_store::unix_now(),
        }))
    }

    /// The cluster's counters: every node's as of its last heartbeat, summed.
    pub fn totals(&self) -> Option<rampart_store::Totals> {
        let nodes = self.nodes.as_ref()?;
        let mut t = rampart_store::Totals::default();
        for n in nodes {
            let o = &n.totals;
            t.received += o.received;
            t.delivered += o.delivered;
            t.bounced += o.bounced;
            t.journaled += o.journaled;
            t.journal_failed += o.journal_failed;
            t.queued += o.queued;
            t.journal_queued += o.journal_queued;
            t.quarantined += o.quarantined;
            t.spam += o.spam;
            t.virus += o.virus;
        }
        Some(t)
    }

    /// Whether `node` has sent a heartbeat lately.
    pub fn answering(&self, node: &NodeRow) -> bool {
        self.now - node.heartbeat_at <= STALE_SECS
    }

    pub fn json(&self) -> Value {
        let h = &self.health;
        json!({
            "clustered": true,
            "node": h.node,
            "database": h.database,
            "database_reachable": h.reachable,
            "since": rfc3339(h.since * 1000),
            "error": h.error,
            "settings_generation": {
                "cluster": self.generation,
                "in_force": (h.settings_generation >= 0).then_some(h.settings_generation),
            },
            "nodes": self.nodes.as_ref().map(|nodes| nodes.iter().map(|n| json!({
                "name": n.name,
                "version": n.version,
                "smtp": n.smtp,
                "web": n.web,
                "started_at": rfc3339(n.started_at * 1000),
                "last_heartbeat": rfc3339(n.heartbeat_at * 1000),
                "settings_generation": n.settings_generation,
                "outbox": n.outbox,
                "counters": counters_json(&n.totals),
                "state": if self.answering(n) { "up" } else { "not answering" },
            })).collect::<Vec<_>>()),
            "totals": self.totals().map(|t| counters_json(&t)),
        })
    }
}

/// A node's (or the cluster's) counters and gauges, named as in `GET /api/v1/status`.
fn counters_json(t: &rampart_store::Totals) -> Value {
    json!({
        "messages_received": t.received,
        "recipients_delivered": t.delivered,
        "recipients_hard_bounced": t.bounced,
        "journal_copies_delivered": t.journaled,
        "journal_copies_failed": t.journal_failed,
        "messages_spam": t.spam,
        "messages_virus": t.virus,
        "active_recipients": t.queued,
        "tdc_queue": t.journal_queued,
        "quarantined_recipients": t.quarantined,
    })
}

/// `None` for "the cluster database cannot be reached"; other errors stay errors.
fn reachable<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Unavailable(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /api/v1/cluster` on a single appliance.
pub fn standalone_json() -> Value {
    json!({ "clustered": false })
}
