//! `pool:` in a registry entry: the config as written ([`PoolConfig`]), its kind, and the
//! spec a pool is built from ([`PoolSpec`]), defaults filled in by the kind's policy.

use std::time::Duration;

use serde::Deserialize;

use super::{MAX_WORKERS, adaptive, inline, lazy, r#static};

/// `pool:`; see SPEC section 5 for the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `inline`, `lazy`, `static` or `adaptive`; chosen from the sizes when absent.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub size: Option<i64>,
    pub workers: Option<i64>,
    pub buffer: Option<i64>,
    pub max_size: Option<i64>,
    pub warm_start: Option<bool>,
    /// Calls a worker may make on one instance before taking a fresh one (default 1).
    pub reuse: Option<i64>,
}

impl PoolConfig {
    /// Problems of this config as `(field path, message)`, in the SPEC's wording.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(kind) = &self.kind
            && PoolKind::from_name(kind).is_none()
        {
            problems.push(("pool.type".into(), "invalid pool type".into()));
        }
        let values = [
            self.size,
            self.workers,
            self.buffer,
            self.max_size,
            self.reuse,
        ];
        if values.iter().flatten().any(|v| *v < 0) {
            problems.push(("pool".into(), "pool values cannot be negative".into()));
        }
        for (field, v) in [
            ("size", self.size),
            ("workers", self.workers),
            ("max_size", self.max_size),
        ] {
            if v.is_some_and(|v| v > MAX_WORKERS) {
                problems.push((
                    format!("pool.{field}"),
                    format!(
                        "pool.{field} must be at most {MAX_WORKERS}, got {}",
                        v.unwrap_or(0)
                    ),
                ));
            }
        }
        // Fixed-size kinds need a size to be fixed at.
        let fixed = matches!(
            self.kind.as_deref().and_then(PoolKind::from_name),
            Some(PoolKind::Static | PoolKind::Inline)
        );
        if fixed && self.size == Some(0) && self.workers.unwrap_or(0) == 0 {
            problems.push((
                "pool.size".into(),
                "pool.size must be greater than 0 for non-flex pools".into(),
            ));
        }
        problems
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Inline,
    Lazy,
    Static,
    Adaptive,
}

impl PoolKind {
    /// The kind named `pool.type`.
    pub fn from_name(name: &str) -> Option<PoolKind> {
        [
            PoolKind::Inline,
            PoolKind::Lazy,
            PoolKind::Static,
            PoolKind::Adaptive,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Inline => "inline",
            PoolKind::Lazy => "lazy",
            PoolKind::Static => "static",
            PoolKind::Adaptive => "adaptive",
        }
    }

    /// What this kind decides (its file).
    pub(super) fn policy(self) -> &'static dyn Policy {
        match self {
            PoolKind::Inline => &inline::Inline,
            PoolKind::Lazy => &lazy::Lazy,
            PoolKind::Static => &r#static::Static,
            PoolKind::Adaptive => &adaptive::Adaptive,
        }
    }
}

/// What one kind of pool decides; everything else is shared.
pub(super) trait Policy: Sync {
    /// The pool of `config`, this kind's defaults applied.
    fn spec(&self, config: &PoolConfig) -> PoolSpec;

    /// Workers started with the pool.
    fn workers_at_start(&self, _spec: &PoolSpec) -> usize {
        0
    }

    /// Workers kept however idle.
    fn min_workers(&self, _spec: &PoolSpec) -> usize {
        0
    }

    /// How long a worker above the minimum stays idle before it retires.
    fn idle(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Every call runs on the caller's thread, one at a time (no workers).
    fn on_caller(&self) -> bool {
        false
    }
}

/// A config number when it is positive.
pub(super) fn positive(v: Option<i64>) -> Option<usize> {
    v.filter(|v| *v > 0).map(|v| v as usize)
}

/// A pool's shape, with SPEC section 5's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub kind: PoolKind,
    /// Static: its workers; lazy and adaptive: the most workers; inline: 1.
    pub size: usize,
    /// Queued calls before callers wait (static); unbounded otherwise.
    pub buffer: usize,
    pub warm_start: bool,
}

impl PoolSpec {
    /// From validated config. Without `type`: `static` when `workers` is set, `inline` for a
    /// `size` without `max_size`, else `lazy` of up to `max_size` (default 100) workers.
    pub fn from_config(config: Option<&PoolConfig>) -> PoolSpec {
        let c = config.cloned().unwrap_or_default();
        let kind = match c.kind.as_deref().and_then(PoolKind::from_name) {
            Some(kind) => kind,
            None if positive(c.workers).is_some() => PoolKind::Static,
            None if positive(c.size).is_some() && positive(c.max_size).is_none() => {
                PoolKind::Inline
            }
            None => {
                return PoolSpec {
                    size: positive(c.max_size).unwrap_or(100),
                    ..lazy::Lazy.spec(&c)
                };
            }
        };
        kind.policy().spec(&c)
    }
}

impl PoolSpec {
    /// How long an idle worker above the minimum lives; also how long a warm instance
    /// (`pool.reuse`) is kept unused.
    pub fn idle(&self) -> Duration {
        self.kind.policy().idle()
    }
}
