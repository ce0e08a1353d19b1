#![allow(dead_code)] // used by the scenarios as they are written
//! Timing and reporting shared by every scenario: medians and p95 over repeated runs, a
//! human table, and with `--json` one JSON object per measure.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Measure {
    pub scenario: &'static str,
    pub measure: String,
    pub samples: Vec<Duration>,
    pub baseline: Option<Vec<Duration>>,
    /// Extra fields (statements sent, rows/s, RSS ...).
    pub extra: Value,
}

pub fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let idx = ((ms.len() as f64 - 1.0) * p).round() as usize;
    ms[idx.min(ms.len() - 1)]
}

impl Measure {
    pub fn new(scenario: &'static str, measure: impl Into<String>, samples: Vec<Duration>) -> Self {
        Measure {
            scenario,
            measure: measure.into(),
            samples,
            baseline: None,
            extra: json!({}),
        }
    }
    pub fn baseline(mut self, samples: Vec<Duration>) -> Self {
        self.baseline = Some(samples);
        self
    }
    pub fn extra(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }
    pub fn to_json(&self) -> Value {
        let p50 = percentile(&self.samples, 0.5);
        let mut v = json!({
            "scenario": self.scenario,
            "measure": self.measure,
            "p50_ms": round(p50),
            "p95_ms": round(percentile(&self.samples, 0.95)),
            "n": self.samples.len(),
        });
        if let Some(b) = &self.baseline {
            let bp50 = percentile(b, 0.5);
            v["baseline_p50_ms"] = json!(round(bp50));
            v["ratio"] = json!(if p50 > 0.0 { round(bp50 / p50) } else { 0.0 });
        }
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), self.extra.as_object()) {
            for (k, val) in extra {
                obj.insert(k.clone(), val.clone());
            }
        }
        v
    }
}

/// `TIDEMARK_BENCH_SCALE` (default 1.0) multiplies every scenario's data sizes, so a quick
/// debug run can check a scenario end to end.
pub fn scale() -> f64 {
    std::env::var("TIDEMARK_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(1.0)
}

/// The machine's 1/5/15-minute load average (`/proc/loadavg`): other work on a shared
/// machine shows in every figure, so each scenario prints it beside them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Times `n` runs of `f`.
pub async fn time_n<F, Fut, T>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let _ = f().await;
        out.push(t.elapsed());
    }
    out
}

pub fn report(measures: &[Measure], as_json: bool) {
    if as_json {
        for m in measures {
            println!("{}", m.to_json());
        }
        return;
    }
    println!(
        "{:<12} {:<44} {:>10} {:>10} {:>5} {:>12} {:>8}  extra",
        "scenario", "measure", "p50 ms", "p95 ms", "n", "base p50", "ratio"
    );
    for m in measures {
        let v = m.to_json();
        println!(
            "{:<12} {:<44} {:>10.3} {:>10.3} {:>5} {:>12} {:>8}  {}",
            m.scenario,
            m.measure,
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p95_ms"].as_f64().unwrap_or(0.0),
            m.samples.len(),
            v.get("baseline_p50_ms")
                .map(|b| format!("{:.3}", b.as_f64().unwrap_or(0.0)))
                .unwrap_or_default(),
            v.get("ratio")
                .map(|r| format!("{:.1}x", r.as_f64().unwrap_or(0.0)))
                .unwrap_or_default(),
            if m.extra.as_object().is_some_and(|o| !o.is_empty()) {
                m.extra.to_string()
            } else {
                String::new()
            },
        );
    }
}
