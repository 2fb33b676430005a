//! `funcs.metrics()`: the pools' counters in the Prometheus text exposition format (0.0.4),
//! one sample per function ID. Counters start again from zero when a reload replaces an
//! entry's pool (Prometheus' `rate()` reads that as a reset).

use std::fmt::Write;

use crate::error::Kind;
use crate::pool::{BUCKETS, Stats};

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text for `pools`: `(function ID, its pool's counters)`.
pub fn render(pools: &[(String, Stats)]) -> String {
    let mut out = String::new();
    let pools: Vec<(String, &Stats)> = pools.iter().map(|(id, s)| (label(id), s)).collect();
    let counters: [(&str, &str, fn(&Stats) -> u64); 8] = [
        ("funcs_calls_total", "Calls that ran, failed or not.", |s| {
            s.calls
        }),
        (
            "funcs_instances_total",
            "Instances made (fresh per call unless pool.reuse).",
            |s| s.instances,
        ),
        (
            "funcs_host_calls_total",
            "Calls from the guest into host functions (funcs.host, wippy:runtime/funcs).",
            |s| s.host_calls,
        ),
        (
            "funcs_http_requests_total",
            "Outgoing HTTP requests guests made (wasi:http), refused ones included.",
            |s| s.http_client.requests,
        ),
        (
            "funcs_http_denied_total",
            "Outgoing HTTP requests the entry's http_client policy refused.",
            |s| s.http_client.denied,
        ),
        (
            "funcs_http_sent_bytes_total",
            "Request body bytes guests sent.",
            |s| s.http_client.sent_bytes,
        ),
        (
            "funcs_http_received_bytes_total",
            "Response body bytes guests received.",
            |s| s.http_client.received_bytes,
        ),
        (
            "funcs_timeouts_total",
            "Calls stopped by their deadline.",
            |s| {
                let i = Kind::ALL.iter().position(|k| *k == Kind::Timeout);
                i.map_or(0, |i| s.metered.failures[i])
            },
        ),
    ];
    for (name, help, value) in counters {
        header(&mut out, name, "counter", help);
        for (id, s) in &pools {
            let _ = writeln!(out, "{name}{{function=\"{id}\"}} {}", value(s));
        }
    }
    let gauges: [(&str, &str, fn(&Stats) -> usize); 6] = [
        ("funcs_in_flight", "Calls running now.", |s| s.in_flight),
        ("funcs_queued", "Calls waiting for a worker.", |s| s.queued),
        ("funcs_workers", "Worker threads of the pool.", |s| {
            s.workers
        }),
        (
            "funcs_warm_instances",
            "Instances kept for more calls (pool.reuse).",
            |s| s.warm_instances,
        ),
        (
            "funcs_open_instances",
            "Instances callers hold (funcs.instantiate).",
            |s| s.open_instances,
        ),
        (
            "funcs_live_handles",
            "Resource handles alive in the instances callers hold.",
            |s| s.live_handles,
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut out, name, "gauge", help);
        for (id, s) in &pools {
            let _ = writeln!(out, "{name}{{function=\"{id}\"}} {}", value(s));
        }
    }
    let name = "funcs_failures_total";
    header(
        &mut out,
        name,
        "counter",
        "Calls that failed, by error kind.",
    );
    for (id, s) in &pools {
        for (kind, n) in Kind::ALL.iter().zip(s.metered.failures) {
            let _ = writeln!(out, "{name}{{function=\"{id}\",kind=\"{kind}\"}} {n}");
        }
    }
    let name = "funcs_traps_total";
    header(
        &mut out,
        name,
        "counter",
        "Calls that trapped, by trap code.",
    );
    for (id, s) in &pools {
        for (code, n) in &s.metered.traps {
            let code = label(code);
            let _ = writeln!(out, "{name}{{function=\"{id}\",code=\"{code}\"}} {n}");
        }
    }
    let name = "funcs_call_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "How long calls ran, from their start (time queued not included).",
    );
    for (id, s) in &pools {
        let m = &s.metered;
        for (le, n) in BUCKETS.iter().zip(m.buckets) {
            let _ = writeln!(out, "{name}_bucket{{function=\"{id}\",le=\"{le}\"}} {n}");
        }
        let count = m.count;
        let _ = writeln!(
            out,
            "{name}_bucket{{function=\"{id}\",le=\"+Inf\"}} {count}"
        );
        let sum = m.duration_ns as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{function=\"{id}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{function=\"{id}\"}} {count}");
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the format says: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_one_sample_per_function() {
        let pools = vec![
            ("a:one".to_string(), Stats::default()),
            ("b:\"two\"".to_string(), Stats::default()),
        ];
        let text = render(&pools);
        assert!(text.contains("# TYPE funcs_calls_total counter\n"));
        assert!(text.contains("funcs_calls_total{function=\"a:one\"} 0\n"));
        assert!(text.contains("funcs_calls_total{function=\"b:\\\"two\\\"\"} 0\n"));
        assert!(
            text.contains("funcs_call_duration_seconds_bucket{function=\"a:one\",le=\"+Inf\"} 0\n")
        );
        assert_eq!(text.matches("# HELP ").count(), 17);
    }
}
