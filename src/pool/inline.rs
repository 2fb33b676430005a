//! `pool: {type: inline}`: every call on the calling thread, one at a time, no worker.

use super::config::Policy;
use super::{PoolConfig, PoolKind, PoolSpec};

pub(super) struct Inline;

impl Policy for Inline {
    fn spec(&self, config: &PoolConfig) -> PoolSpec {
        PoolSpec {
            kind: PoolKind::Inline,
            size: 1,
            buffer: usize::MAX,
            warm_start: config.warm_start.unwrap_or(false),
        }
    }

    fn on_caller(&self) -> bool {
        true
    }
}
