//! `pool: {type: lazy}`: no workers until calls come; a worker is added when the queued calls
//! outnumber the idle workers (each claims one), up to `max_size` (default 16); workers idle
//! for 30 s retire.

use super::config::{Policy, positive};
use super::{PoolConfig, PoolKind, PoolSpec};

pub(super) struct Lazy;

impl Policy for Lazy {
    fn spec(&self, config: &PoolConfig) -> PoolSpec {
        PoolSpec {
            kind: PoolKind::Lazy,
            size: positive(config.max_size).unwrap_or(16),
            buffer: usize::MAX,
            warm_start: config.warm_start.unwrap_or(false),
        }
    }
}
