//! `pool: {type: adaptive}`: one worker from the first call (or from load with `warm_start`),
//! more added like `lazy` when the queued calls outnumber the idle workers, up to `max_size`
//! (default 100, as the reference's page says); workers idle for 5 s retire down to one.

use std::time::Duration;

use super::config::{Policy, positive};
use super::{PoolConfig, PoolKind, PoolSpec};

pub(super) struct Adaptive;

impl Policy for Adaptive {
    fn spec(&self, config: &PoolConfig) -> PoolSpec {
        PoolSpec {
            kind: PoolKind::Adaptive,
            // "El maximo por defecto del pool elastico es 100 workers".
            size: positive(config.max_size).unwrap_or(100),
            buffer: usize::MAX,
            warm_start: config.warm_start.unwrap_or(false),
        }
    }

    fn workers_at_start(&self, spec: &PoolSpec) -> usize {
        usize::from(spec.warm_start)
    }

    fn min_workers(&self, _: &PoolSpec) -> usize {
        1
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(5)
    }
}
