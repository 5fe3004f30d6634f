//! Server-side load tester behind `POST /gateway/loadtest`.
//!
//! Browsers cap connections per host (about six), so a "burst of 50" fired
//! from the dashboard would trickle out six at a time and never exercise the
//! rate limiter. The admin thread fires it instead: raw HTTP/1.1 over std
//! `TcpStream`s at the gateway's data port, one request per connection.
//!
//! Invariants: every knob is capped ([`MAX_REQUESTS`], [`MAX_CONCURRENCY`],
//! [`MAX_SECONDS`], [`MAX_RATE`]), every socket has timeouts, and the run can
//! be cancelled (admin shutdown), so one call cannot pin the admin forever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::client::{one_shot, Timeouts};

/// Most requests in one burst.
pub const MAX_REQUESTS: u32 = 1000;
/// Most requests in flight at once (one thread each).
pub const MAX_CONCURRENCY: u32 = 200;
/// Longest sustained run, in seconds.
pub const MAX_SECONDS: f64 = 30.0;
/// Highest sustained rate, requests per second.
pub const MAX_RATE: f64 = 200.0;

const DEFAULT_PATH: &str = "/api/users";
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    io: Duration::from_secs(5),
};
/// Histogram bucket upper bounds in ms; the last one exceeds the worst case
/// (connect + io timeouts), so every completed exchange lands in a bucket.
const BUCKETS_MS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// How the requests are spread over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// All at once, `concurrency` in flight.
    Burst,
    /// Request `i` is due at `i / rate` seconds after the start.
    Sustained {
        /// Requests per second.
        rate: f64,
        /// Run length in seconds.
        seconds: f64,
    },
}

/// A validated load-test request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Burst or sustained.
    pub shape: Shape,
    /// Requests to send.
    pub total: u32,
    /// Worker threads (requests in flight at most).
    pub concurrency: u32,
    /// Request target, e.g. `/api/users` (validated: printable ASCII, no spaces).
    pub path: String,
}

impl Plan {
    /// Validates the JSON body. `{"requests":50,"concurrency":50,"path":"/api/users"}`
    /// is a burst; `{"rate":20,"seconds":5}` is sustained. Errors name the field.
    pub fn from_json(body: Option<&Value>) -> Result<Plan, String> {
        let empty = serde_json::Map::new();
        let obj = match body {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => return Err("load test body must be a JSON object".into()),
        };
        let mut requests = None;
        let mut concurrency = None;
        let mut rate = None;
        let mut seconds = None;
        let mut path = DEFAULT_PATH.to_string();
        for (k, v) in obj {
            match k.as_str() {
                "requests" => requests = Some(int_field(k, v, 1, MAX_REQUESTS)?),
                "concurrency" => concurrency = Some(int_field(k, v, 1, MAX_CONCURRENCY)?),
                "rate" => rate = Some(num_field(k, v, MAX_RATE)?),
                "seconds" => seconds = Some(num_field(k, v, MAX_SECONDS)?),
                "path" => path = path_field(v)?,
                other => {
                    return Err(format!(
                        "unknown field `{other}`; expected requests, concurrency, path, rate or seconds"
                    ))
                }
            }
        }
        let sustained = rate.is_some() || seconds.is_some();
        if sustained && requests.is_some() {
            return Err(
                "requests: give either requests (burst) or rate/seconds (sustained), not both"
                    .into(),
            );
        }
        if sustained {
            let rate = rate.unwrap_or(10.0);
            let seconds = seconds.unwrap_or(5.0);
            let total = (rate * seconds).round().max(1.0) as u32;
            // Enough workers to keep the schedule when responses take up to
            // ~2 s (a crashed demo backend answers slowly).
            let default_workers = ((rate * 2.0).ceil() as u32).clamp(4, MAX_CONCURRENCY);
            Ok(Plan {
                shape: Shape::Sustained { rate, seconds },
                total,
                concurrency: concurrency.unwrap_or(default_workers).min(total),
                path,
            })
        } else {
            let total = requests.unwrap_or(10);
            Ok(Plan {
                shape: Shape::Burst,
                total,
                concurrency: concurrency.unwrap_or(MAX_CONCURRENCY).min(total),
                path,
            })
        }
    }
}

fn int_field(name: &str, v: &Value, min: u32, max: u32) -> Result<u32, String> {
    v.as_u64()
        .filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| format!("{name} must be an integer between {min} and {max}"))
}

fn num_field(name: &str, v: &Value, max: f64) -> Result<f64, String> {
    v.as_f64()
        .filter(|n| n.is_finite() && *n > 0.0 && *n <= max)
        .ok_or_else(|| format!("{name} must be a number > 0 and <= {max}"))
}

fn path_field(v: &Value) -> Result<String, String> {
    let p = v.as_str().unwrap_or("");
    // The path goes verbatim into a request line: forbid anything that could
    // end it early or inject a header.
    let ok = p.starts_with('/') && p.len() <= 2048 && p.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(p.to_string())
    } else {
        Err("path must start with '/' and contain only printable ASCII without spaces".into())
    }
}

/// Latency percentiles in milliseconds over the exchanges that got a status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// One histogram bucket (non-cumulative count of latencies in `(prev, le_ms]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound in ms.
    pub le_ms: f64,
    /// Exchanges in this bucket.
    pub count: u32,
}

/// The result of a run, serialised as the endpoint's JSON answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `burst` or `sustained`.
    pub mode: &'static str,
    /// The request target used.
    pub path: String,
    /// Worker threads used.
    pub concurrency: u32,
    /// Requests attempted.
    pub sent: u32,
    /// 2xx answers.
    pub ok: u32,
    /// 429 answers.
    pub limited: u32,
    /// 503 answers.
    pub unavailable: u32,
    /// Everything else: other statuses and transport errors.
    pub errors: u32,
    /// Transport errors alone (no HTTP status at all).
    pub transport_errors: u32,
    /// Count per HTTP status code.
    pub status: BTreeMap<String, u32>,
    /// Count per `x-backend` response header.
    pub by_backend: BTreeMap<String, u32>,
    /// Latency percentiles (answers only).
    pub latency_ms: Latency,
    /// Latency histogram (answers only).
    pub histogram: Vec<Bucket>,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Up to five distinct transport error messages, for diagnosis.
    pub error_samples: Vec<String>,
}

enum Outcome {
    Answer {
        status: u16,
        backend: Option<String>,
        elapsed: Duration,
    },
    Failed(String),
}

/// Runs `plan` against `target`. Returns early (with what was sent so far)
/// once `cancel` is set.
pub fn run(plan: &Plan, target: SocketAddr, cancel: &Arc<AtomicBool>) -> Summary {
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    // Workers block on `go` until the sender is dropped, so the burst starts
    // together once every thread exists (and a failed spawn cannot deadlock
    // the rest, unlike a Barrier sized in advance).
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
    let mut workers = Vec::new();
    for i in 0..plan.concurrency.max(1) {
        let next = Arc::clone(&next);
        let cancel = Arc::clone(cancel);
        let go = go_rx.clone();
        let plan = plan.clone();
        let spawned = thread::Builder::new()
            .name(format!("admin-loadtest-{i}"))
            // Each worker only holds a small read buffer.
            .stack_size(128 * 1024)
            .spawn(move || {
                let _ = go.recv();
                worker(&plan, target, &next, &cancel, started)
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                log::warn!("load test: could only start {i} workers: {e}");
                break;
            }
        }
    }
    drop(go_tx);
    let mut outcomes = Vec::with_capacity(plan.total as usize);
    for w in workers {
        // A panicking worker loses only its own outcomes.
        if let Ok(mut part) = w.join() {
            outcomes.append(&mut part);
        }
    }
    summarize(plan, outcomes, started.elapsed())
}

fn worker(
    plan: &Plan,
    target: SocketAddr,
    next: &AtomicU32,
    cancel: &AtomicBool,
    started: Instant,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    loop {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.total {
            break;
        }
        if let Shape::Sustained { rate, .. } = plan.shape {
            // Pacing, not synchronisation: wait for this request's slot, in
            // short naps so cancellation is noticed promptly.
            let due = started + Duration::from_secs_f64(f64::from(i) / rate);
            loop {
                let now = Instant::now();
                if now >= due || cancel.load(Ordering::Relaxed) {
                    break;
                }
                thread::sleep((due - now).min(Duration::from_millis(100)));
            }
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        let t0 = Instant::now();
        out.push(
            match one_shot(target, "GET", &plan.path, &[], b"", TIMEOUTS) {
                Ok(resp) => Outcome::Answer {
                    status: resp.status,
                    backend: resp.header("x-backend").map(str::to_string),
                    elapsed: t0.elapsed(),
                },
                Err(e) => Outcome::Failed(e.to_string()),
            },
        );
    }
    out
}

fn summarize(plan: &Plan, outcomes: Vec<Outcome>, duration: Duration) -> Summary {
    let mut s = Summary {
        mode: match plan.shape {
            Shape::Burst => "burst",
            Shape::Sustained { .. } => "sustained",
        },
        path: plan.path.clone(),
        concurrency: plan.concurrency,
        duration_ms: duration.as_millis() as u64,
        histogram: BUCKETS_MS
            .iter()
            .map(|&le_ms| Bucket { le_ms, count: 0 })
            .collect(),
        ..Summary::default()
    };
    let mut lat = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        s.sent += 1;
        match o {
            Outcome::Answer {
                status,
                backend,
                elapsed,
            } => {
                match status {
                    200..=299 => s.ok += 1,
                    429 => s.limited += 1,
                    503 => s.unavailable += 1,
                    _ => s.errors += 1,
                }
                *s.status.entry(status.to_string()).or_default() += 1;
                if let Some(b) = backend {
                    *s.by_backend.entry(b).or_default() += 1;
                }
                let ms = elapsed.as_secs_f64() * 1000.0;
                let slot = BUCKETS_MS
                    .iter()
                    .position(|&le| ms <= le)
                    .unwrap_or(BUCKETS_MS.len() - 1);
                s.histogram[slot].count += 1;
                lat.push(ms);
            }
            Outcome::Failed(msg) => {
                s.errors += 1;
                s.transport_errors += 1;
                if s.error_samples.len() < 5 && !s.error_samples.contains(&msg) {
                    s.error_samples.push(msg);
                }
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    s.latency_ms = Latency {
        p50: percentile(&lat, 0.50),
        p90: percentile(&lat, 0.90),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().map(round2).unwrap_or(0.0),
    };
    s
}

/// Nearest-rank percentile of sorted values, rounded to 0.01 ms.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    round2(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_defaults_and_caps() {
        let p = Plan::from_json(None).unwrap();
        assert_eq!((p.shape, p.total, p.concurrency), (Shape::Burst, 10, 10));
        assert_eq!(p.path, "/api/users");
        let p = Plan::from_json(Some(&json!({"requests": 50, "concurrency": 5}))).unwrap();
        assert_eq!((p.total, p.concurrency), (50, 5));
        let p = Plan::from_json(Some(&json!({"rate": 20, "seconds": 5}))).unwrap();
        assert_eq!(p.total, 100);
        assert!(matches!(p.shape, Shape::Sustained { .. }));
        for (body, field) in [
            (json!({"requests": 1001}), "requests"),
            (json!({"requests": 0}), "requests"),
            (json!({"concurrency": 201}), "concurrency"),
            (json!({"seconds": 31}), "seconds"),
            (json!({"rate": -1}), "rate"),
            (json!({"path": "/a b"}), "path"),
            (json!({"path": "/a\r\nX: y"}), "path"),
            (json!({"requests": 5, "rate": 2}), "requests"),
            (json!({"bogus": 1}), "bogus"),
        ] {
            let err = Plan::from_json(Some(&body)).unwrap_err();
            assert!(err.contains(field), "{body}: {err}");
        }
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[3.0], 0.9), 3.0);
    }
}
