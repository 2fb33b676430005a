//! `pool: {type: static}`: `workers` threads (default 8) started with the pool, on load; a
//! queue of `buffer` calls (default 64 per worker); a caller finding it full waits for room
//! (backpressure, never a dropped call). Workers never retire.

use super::config::{Policy, positive};
use super::{PoolConfig, PoolKind, PoolSpec};

pub(super) struct Static;

impl Policy for Static {
    fn spec(&self, config: &PoolConfig) -> PoolSpec {
        let workers = positive(config.workers)
            .or(positive(config.size))
            .unwrap_or(8);
        PoolSpec {
            kind: PoolKind::Static,
            size: workers,
            buffer: positive(config.buffer).unwrap_or(workers * 64),
            warm_start: config.warm_start.unwrap_or(false),
        }
    }

    fn workers_at_start(&self, spec: &PoolSpec) -> usize {
        spec.size
    }

    fn min_workers(&self, spec: &PoolSpec) -> usize {
        spec.size
    }
}
