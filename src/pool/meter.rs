//! What a pool counts about the calls it ran, for `funcs.stats` and `funcs.metrics`: failures
//! by kind, traps by code, and a histogram of call durations (from when a call starts
//! running, queueing not included), whose count is the number of calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Kind};
use crate::sync::unpoison;

/// Upper bounds of the duration histogram's buckets, in seconds (the last bucket, `+Inf`,
/// is every call).
pub const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
    5.0,
];

/// The counters of one pool.
#[derive(Default)]
pub(super) struct Meter {
    /// By [`Kind::ALL`]'s order.
    failures: [AtomicU64; Kind::ALL.len()],
    /// Failures are rare: a lock is cheap enough for them.
    traps: Mutex<BTreeMap<String, u64>>,
    /// Calls per bucket (not cumulative), the last for longer calls.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_ns: AtomicU64,
}

/// A reading of a [`Meter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metered {
    /// Failures by kind, in [`Kind::ALL`]'s order.
    pub failures: [u64; Kind::ALL.len()],
    /// Traps by code (`unreachable_code_reached`, `interrupt`, ...).
    pub traps: Vec<(String, u64)>,
    /// Cumulative counts of calls no longer than each of [`BUCKETS`].
    pub buckets: [u64; BUCKETS.len()],
    /// Every call (`+Inf`).
    pub count: u64,
    /// All calls' durations added up, in nanoseconds.
    pub duration_ns: u64,
}

impl Metered {
    /// All failures.
    pub fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }
}

impl Meter {
    /// Counts a call that ran for `took` and ended with `error`, if it failed.
    pub(super) fn record(&self, error: Option<&Error>, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.duration_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(e) = error {
            let kind = Kind::ALL.iter().position(|k| *k == e.kind()).unwrap_or(0);
            self.failures[kind].fetch_add(1, Ordering::Relaxed);
            if let Some(code) = &e.details().trap {
                *unpoison(self.traps.lock()).entry(code.clone()).or_default() += 1;
            }
        }
    }

    pub(super) fn read(&self) -> Metered {
        let mut buckets = [0; BUCKETS.len()];
        let mut below = 0;
        for (i, b) in buckets.iter_mut().enumerate() {
            below += self.buckets[i].load(Ordering::Relaxed);
            *b = below;
        }
        let count = below + self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        Metered {
            failures: std::array::from_fn(|i| self.failures[i].load(Ordering::Relaxed)),
            traps: unpoison(self.traps.lock())
                .iter()
                .map(|(code, n)| (code.clone(), *n))
                .collect(),
            buckets,
            count,
            duration_ns: self.duration_ns.load(Ordering::Relaxed),
        }
    }
}
