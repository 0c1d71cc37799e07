//! MID, ICID and DCID: numbers that are never reused on this appliance (SPEC §1).
//!
//! IDs are reserved from the `counters` table in blocks, so handing one out normally costs no
//! database write; a restart abandons the rest of the current block instead of risking reuse.

use std::fmt;

use sqlx::SqlitePool;
use tokio::sync::Mutex;

use crate::StoreError;

/// Message ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mid(pub u64);
/// Injection (inbound) connection ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icid(pub u64);
/// Delivery (outbound) connection ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dcid(pub u64);

macro_rules! display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display!(Mid, Icid, Dcid);

const BLOCK: i64 = 1000;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Mid,
    Icid,
    Dcid,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mid => "mid",
            Kind::Icid => "icid",
            Kind::Dcid => "dcid",
        }
    }
}

/// `(next, limit)`: IDs in `next..limit` are reserved and unused.
#[derive(Debug, Default)]
pub(crate) struct Allocators {
    mid: Mutex<(u64, u64)>,
    icid: Mutex<(u64, u64)>,
    dcid: Mutex<(u64, u64)>,
}

impl Allocators {
    pub(crate) async fn next(&self, pool: &SqlitePool, kind: Kind) -> Result<u64, StoreError> {
        let slot = match kind {
            Kind::Mid => &self.mid,
            Kind::Icid => &self.icid,
            Kind::Dcid => &self.dcid,
        };
        let mut range = slot.lock().await;
        if range.0 >= range.1 {
            let limit: i64 = sqlx::query_scalar(
                "UPDATE counters SET next = next + ?1 WHERE name = ?2 RETURNING next",
            )
            .bind(BLOCK)
            .bind(kind.name())
            .fetch_one(pool)
            .await?;
            *range = ((limit - BLOCK) as u64, limit as u64);
        }
        let id = range.0;
        range.0 += 1;
        Ok(id)
    }
}
