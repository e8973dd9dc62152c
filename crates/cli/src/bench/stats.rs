//! Measurements around the load: latency histograms, CPU and memory of the server (from
//! /proc, given its pid), CPU of this process and of everything else on the machine, and
//! what the report is stamped with (git sha, hardware).

use std::process::Command;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Microsecond latencies from 1 µs to one hour, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

fn ms(micros: u64) -> f64 {
    (micros as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// `{n, p50_ms, p99_ms, p999_ms, max_ms, mean_ms}`, or null when nothing was recorded.
pub fn latency_json(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "n": histogram.len(),
        "p50_ms": ms(histogram.value_at_quantile(0.5)),
        "p99_ms": ms(histogram.value_at_quantile(0.99)),
        "p999_ms": ms(histogram.value_at_quantile(0.999)),
        "max_ms": ms(histogram.max()),
        "mean_ms": (histogram.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

pub fn latency_text(value: &Value) -> String {
    if value.is_null() {
        return "n/a".to_owned();
    }
    format!(
        "p50 {} ms, p99 {} ms, p999 {} ms, max {} ms",
        value["p50_ms"], value["p99_ms"], value["p999_ms"], value["max_ms"]
    )
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of a process (`self` or a pid).
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// A `/proc/<pid>/status` value in kB (`VmHWM`, `VmRSS`).
pub fn status_kb(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Busy CPU seconds of the whole machine, all cores, from /proc/stat.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = ticks.iter().take(8).sum::<f64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy / TICKS_PER_SECOND)
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// CPU and memory over one phase of a run.
pub struct Probe {
    started: Instant,
    server_pid: Option<String>,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
    machine_busy: Option<f64>,
}

impl Probe {
    pub fn start(server_pid: Option<u32>) -> Probe {
        let server_pid = server_pid.map(|pid| pid.to_string());
        Probe {
            started: Instant::now(),
            server_cpu: server_pid.as_deref().and_then(process_cpu_seconds),
            client_cpu: process_cpu_seconds("self"),
            machine_busy: machine_busy_seconds(),
            server_pid,
        }
    }

    /// `records` divides the server's CPU time into a per-record cost.
    pub fn finish(&self, records: u64) -> Value {
        let seconds = self.started.elapsed().as_secs_f64();
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        let server_cpu = delta(
            self.server_cpu,
            self.server_pid.as_deref().and_then(process_cpu_seconds),
        );
        let client_cpu = delta(self.client_cpu, process_cpu_seconds("self"));
        let machine = delta(self.machine_busy, machine_busy_seconds());
        let other = machine.map(|m| m - server_cpu.unwrap_or(0.0) - client_cpu.unwrap_or(0.0));
        let percent = |cpu: Option<f64>| cpu.map(|c| round(c / seconds * 100.0, 1));
        let mut value = json!({
            "client_cpu_s": client_cpu.map(|c| round(c, 2)),
            "client_cpu_pct": percent(client_cpu),
            "other_cpu_pct": percent(other.map(|o| o.max(0.0))),
        });
        if let Some(pid) = &self.server_pid {
            value["server_cpu_s"] = json!(server_cpu.map(|c| round(c, 2)));
            value["server_cpu_pct"] = json!(percent(server_cpu));
            value["server_cpu_us_per_record"] = json!(
                server_cpu
                    .filter(|_| records > 0)
                    .map(|c| round(c * 1e6 / records as f64, 1))
            );
            value["server_vm_hwm_mb"] =
                json!(status_kb(pid, "VmHWM").map(|kb| round(kb as f64 / 1024.0, 1)));
            value["server_vm_rss_mb"] =
                json!(status_kb(pid, "VmRSS").map(|kb| round(kb as f64 / 1024.0, 1)));
        }
        value
    }
}

/// The short git sha of the source tree this binary was built from (or of the current
/// directory), with `-dirty` when it has uncommitted changes; best effort.
pub fn git_sha() -> Option<String> {
    let git = |dir: &str, args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    [env!("CARGO_MANIFEST_DIR"), "."].iter().find_map(|dir| {
        let sha = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{sha}-dirty") } else { sha })
    })
}

pub fn hardware() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, v)| v.trim().to_owned())
    });
    let memory_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    });
    let load = std::fs::read_to_string("/proc/loadavg").ok();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "model_name": model,
        "memory_gib": memory_kb.map(|kb| round(kb as f64 / 1024.0 / 1024.0, 1)),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
        "loadavg_at_start": load.map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    })
}
