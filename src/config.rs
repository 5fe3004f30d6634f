//! Static configuration: the JSON file given with `--config`, or the demo.
//!
//! Loading validates everything up front and fails with a message naming the
//! bad field (`timeouts.connect_ms: ...`), so a typo never starts a gateway
//! that behaves differently from what its file says. Key names are a stable
//! interface: tools outside the project write these files.

use std::collections::HashSet;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

mod auth;
mod dup_keys;
pub mod resilience;
mod routing;
mod stage;
mod store;
mod tls;
pub mod trace;

pub use auth::{
    algorithm_name, family, ApiKeyConfig, ConsumerConfig, Family, JwtConfig, RouteAuthConfig,
    DEFAULT_KEY_HEADER, DEFAULT_LEEWAY_SECS,
};
pub use resilience::Resilience;
pub use routing::{
    HeaderRules, PathRule, RouteConfig, RouteTimeouts, UpstreamConfig, DEFAULT_UPSTREAM,
};
pub use stage::Stage;
pub use tls::{CertConfig, TlsConfig, TlsVersion};

use api_gateway_protocol::{BalanceSpec, BreakerSpec, LimitSpec, StatusSet};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::algo::limit::shadow::{Algorithm, Shadows};
use crate::backend::BackendDef;
use crate::net::cidr::CidrSet;

/// A configuration error; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(field: &str, msg: impl fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("{field}: {msg}")))
}

/// What identifies a client to the rate limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client's IP address (default).
    ClientIp,
    /// The value of this request header (e.g. `X-API-Key`); requests without
    /// it fall back to the client IP.
    Header(String),
    /// The consumer the route's `auth` proved, whichever key or token it
    /// used; anonymous requests fall back to the client IP.
    Consumer,
}

impl KeySource {
    /// The config form: `ip` or `header:NAME`.
    pub fn describe(&self) -> String {
        match self {
            KeySource::ClientIp => "ip".into(),
            KeySource::Header(h) => format!("header:{h}"),
            KeySource::Consumer => "consumer".into(),
        }
    }
}

/// `rate_limit`: the algorithm plus how clients are keyed.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Algorithm and parameters.
    pub spec: LimitSpec,
    /// Client identity.
    pub key: KeySource,
    /// Most clients tracked at once (memory bound of the limiter).
    pub max_keys: usize,
    /// Where counts live: in-process (default) or shared through Redis.
    pub store: crate::algo::limit::global::StoreConfig,
    /// `shadow`: algorithms that run beside the live one and only count.
    /// `None` when the field is absent: a route's own `rate_limit` then
    /// follows the top-level list (as nginx inherits a directive), and the
    /// top level has none; `"shadow": []` turns a route's shadows off.
    pub shadow: Option<Shadows>,
}

/// `timeouts`, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Non-blocking connect to a backend (then 504).
    pub connect_ms: u64,
    /// Deadline from the first byte of a request head to the complete head
    /// (then 408); progress does not extend it.
    pub header_read_ms: u64,
    /// Deadline from the request being fully sent to the complete final
    /// response head (then 504; progress does not extend it), and the
    /// inactivity limit while request or response bodies stream.
    pub backend_response_ms: u64,
    /// Idle keep-alive client connections are closed after this.
    pub idle_ms: u64,
    /// On SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace_ms: u64,
    /// Deadline from accepting a TLS connection to the end of its
    /// handshake (`None`: `header_read_ms`).
    pub handshake_ms: Option<u64>,
}

/// `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (431 beyond); also the per-direction buffer size.
    pub max_header_bytes: usize,
    /// Largest request body (413 beyond).
    pub max_body_bytes: u64,
    /// Most client connections at once per worker (503 beyond).
    pub max_connections: usize,
    /// Longest request-target (414 beyond).
    pub max_uri_bytes: usize,
    /// Idle keep-alive connections kept per backend per worker.
    pub max_idle_per_backend: usize,
    /// Slowest request-body upload tolerated, in bytes per second averaged
    /// over a window ([`Tuning::body_rate_window_ms`]) after a grace of one
    /// window (408 below it); 0 disables the check.
    pub min_body_bytes_per_sec: u64,
}

/// Internal timing knobs. Not config-file keys: fixed in production, they
/// are fields so tests can shorten them instead of waiting seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Window over which `limits.min_body_bytes_per_sec` is averaged; the
    /// first window of each body is the grace period.
    pub body_rate_window_ms: u64,
    /// How long a spare buffer must go unused before the pool may free it
    /// (down to its floor; see `conn::buffer::BufferPool::trim`).
    pub pool_trim_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            body_rate_window_ms: 10_000,
            pool_trim_ms: 5_000,
        }
    }
}

/// `cors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Allowed origins; `*` allows any.
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Methods` on preflight.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers` on preflight.
    pub allow_headers: String,
    /// `Access-Control-Max-Age` on preflight, seconds.
    pub max_age_secs: u64,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output (buffered, flushed every ~100 ms).
    Stdout,
    /// Appended to this file.
    File(String),
    /// Not written.
    Off,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client-facing address.
    pub listen: SocketAddr,
    /// Admin (control plane) address; `None` disables the admin port.
    pub admin: Option<SocketAddr>,
    /// Bearer token required on the admin port (mandatory off loopback).
    pub admin_token: Option<String>,
    /// Event-loop threads, each with its own poll and `SO_REUSEPORT`
    /// listener (default: [`default_workers`]).
    pub workers: usize,
    /// Backends, in id order.
    pub backends: Vec<BackendDef>,
    /// Initial load balancer.
    pub load_balancer: BalanceSpec,
    /// Initial rate limiter.
    pub rate_limit: RateLimitConfig,
    /// Breaker thresholds.
    pub circuit_breaker: BreakerSpec,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits.
    pub limits: Limits,
    /// Middleware order.
    pub pipeline: Vec<Stage>,
    /// CORS policy.
    pub cors: CorsConfig,
    /// Upstreams besides `default` (the top-level `backends`,
    /// `load_balancer` and `circuit_breaker`), in config order.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, in config order. Empty: one catch-all route to `default`
    /// whose request target is forwarded byte for byte (no routing, no
    /// normalization: see `Config::routing`).
    pub routes: Vec<RouteConfig>,
    /// Consumers: who may call routes with `auth`, and their keys.
    pub consumers: Vec<ConsumerConfig>,
    /// The HTTPS listener beside the plain one (`None`: plain only).
    pub tls: Option<TlsConfig>,
    /// `Upgrade` protocols that may open a tunnel (case-insensitive tokens);
    /// other offers are forwarded as plain requests without the upgrade.
    pub allowed_upgrades: Vec<String>,
    /// Access log destination.
    pub access_log: AccessLogTarget,
    /// Internal timing knobs (not read from the config file).
    pub tuning: Tuning,
    /// Peers whose `X-Forwarded-For` entries are believed (see
    /// `crate::http::client_ip` for the walk). Empty: nobody's.
    pub trusted_proxies: CidrSet,
    /// Every accepted connection must start with a PROXY protocol header
    /// (v1 or v2), whose source becomes the connection's peer.
    pub proxy_protocol: bool,
    /// The `default` upstream's resilience settings (health checks,
    /// retries, slow start, in-flight cap and queue), and the defaults of
    /// every other upstream.
    pub resilience: Resilience,
    /// The per-request decision trace (`trace`).
    pub trace: trace::TraceConfig,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 1000,
            header_read_ms: 5000,
            backend_response_ms: 30_000,
            idle_ms: 60_000,
            shutdown_grace_ms: 10_000,
            handshake_ms: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_connections: 10_000,
            max_uri_bytes: 8 * 1024,
            max_idle_per_backend: 64,
            min_body_bytes_per_sec: 1024,
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allow_origins: vec!["*".into()],
            allow_methods: "GET, POST, PUT, PATCH, DELETE, OPTIONS".into(),
            allow_headers: "Content-Type, Authorization, X-API-Key, X-Request-Id".into(),
            max_age_secs: 600,
        }
    }
}

/// One worker per core the process may run on (its affinity mask and cgroup
/// quota included), 1 if that cannot be determined.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(256))
}

/// The default pipeline, as in the original design.
pub const DEFAULT_PIPELINE: [Stage; 5] = [
    Stage::Logger,
    Stage::Cors,
    Stage::RateLimit,
    Stage::CircuitBreaker,
    Stage::Proxy,
];

/// The demo's breaker: a crashed demo backend answers 500, so 500 counts as
/// a failure here (it does not by default), and every circuit may open
/// (`max_open_ratio` 1.0) so that "all three crashed" fails fast with 503.
pub fn demo_breaker() -> BreakerSpec {
    let mut statuses = vec![500];
    statuses.extend(api_gateway_protocol::DEFAULT_FAILURE_STATUSES);
    BreakerSpec {
        failure_statuses: StatusSet::from_statuses(&statuses).unwrap_or_default(),
        max_open_ratio: 1.0,
        ..BreakerSpec::default()
    }
}

impl Config {
    /// The demo: three local backends with weights 3/2/1 behind port 4000.
    pub fn demo() -> Config {
        let backends = [
            ("Backend-A", 3001, 3),
            ("Backend-B", 3002, 2),
            ("Backend-C", 3003, 1),
        ]
        .iter()
        .map(|&(name, port, weight)| BackendDef {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
            tls: None,
        })
        .collect();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 4001))),
            admin_token: None,
            workers: default_workers(),
            backends,
            load_balancer: BalanceSpec::RoundRobin,
            rate_limit: RateLimitConfig {
                spec: LimitSpec::SlidingCounter {
                    limit: 100,
                    window_ms: 10_000,
                },
                key: KeySource::ClientIp,
                max_keys: 65_536,
                store: Default::default(),
                shadow: None,
            },
            circuit_breaker: demo_breaker(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            pipeline: DEFAULT_PIPELINE.to_vec(),
            cors: CorsConfig::default(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            consumers: Vec::new(),
            tls: None,
            allowed_upgrades: vec!["websocket".into()],
            access_log: AccessLogTarget::Stdout,
            tuning: Tuning::default(),
            trusted_proxies: CidrSet::default(),
            proxy_protocol: false,
            resilience: Resilience::default(),
            trace: trace::TraceConfig::default(),
        }
    }

    /// Whether routes are configured: requests are then matched to a route
    /// on their normalized path, and that path is what gets forwarded.
    /// Without routes there is one catch-all route to `default` and the
    /// target is forwarded byte for byte.
    pub fn routing(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Every upstream: `default` (the top-level backends) first when there
    /// are any, then `upstreams` in config order.
    pub fn all_upstreams(&self) -> Vec<UpstreamConfig> {
        let default = (!self.backends.is_empty()).then(|| UpstreamConfig {
            name: DEFAULT_UPSTREAM.into(),
            backends: self.backends.clone(),
            load_balancer: self.load_balancer.clone(),
            circuit_breaker: self.circuit_breaker,
            resilience: self.resilience.clone(),
        });
        default.into_iter().chain(self.upstreams.clone()).collect()
    }

    /// The names of [`Config::all_upstreams`], in the same order.
    pub fn upstream_names(&self) -> Vec<&str> {
        let default = (!self.backends.is_empty()).then_some(DEFAULT_UPSTREAM);
        default
            .into_iter()
            .chain(self.upstreams.iter().map(|u| u.name.as_str()))
            .collect()
    }

    /// The names of the routes, in config order (= route ids, = limiter
    /// slots `r + 1`): the catch-all `default` alone without routes.
    pub fn route_names(&self) -> Vec<&str> {
        if self.routes.is_empty() {
            vec![DEFAULT_UPSTREAM]
        } else {
            self.routes.iter().map(|r| r.name.as_str()).collect()
        }
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Config::from_json(&text)
    }

    /// Parses and validates a JSON config text.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("invalid JSON: {e}")))?;
        // `Value` silently keeps the last of two equal keys.
        dup_keys::check(text).map_err(ConfigError)?;
        let obj = as_object(&root, "config")?;
        check_keys(
            obj,
            "",
            &[
                "listen",
                "admin",
                "admin_token",
                "workers",
                "backends",
                "upstreams",
                "load_balancer",
                "rate_limit",
                "circuit_breaker",
                "timeouts",
                "limits",
                "pipeline",
                "cors",
                "routes",
                "consumers",
                "tls",
                "allowed_upgrades",
                "access_log",
                "trusted_proxies",
                "proxy_protocol",
                "health_check",
                "retry",
                "slow_start_ms",
                "max_inflight_per_backend",
                "queue",
                "trace",
            ],
        )?;
        let mut cfg = Config::demo();
        cfg.access_log = AccessLogTarget::Stdout;
        // A file gets the production breaker, not the demo's (500 counts).
        cfg.circuit_breaker = BreakerSpec::default();
        cfg.listen =
            addr_field(obj, "listen")?.ok_or_else(|| ConfigError("listen: required".into()))?;
        cfg.admin = match obj.get("admin") {
            Some(Value::Null) => None,
            Some(_) => addr_field(obj, "admin")?,
            None => Some(SocketAddr::from(([127, 0, 0, 1], 4001))),
        };
        cfg.admin_token = field(obj, "admin_token", "admin_token")?;
        if let Some(w) = field::<usize>(obj, "workers", "workers")? {
            if !(1..=256).contains(&w) {
                return err("workers", "must be between 1 and 256");
            }
            cfg.workers = w;
        }
        let mut backend_names = HashSet::new();
        // With `upstreams`, the top-level backends (the `default` upstream)
        // are optional.
        cfg.backends = match (obj.get("backends"), obj.get("upstreams")) {
            (None, Some(_)) => Vec::new(),
            (v, _) => backend_list(v, "backends", &mut backend_names)?,
        };
        if let Some(v) = obj.get("load_balancer") {
            cfg.load_balancer = balancer(v, "load_balancer")?;
        }
        if let Some(v) = obj.get("rate_limit") {
            cfg.rate_limit = rate_limit(v)?;
        }
        if let Some(v) = obj.get("circuit_breaker") {
            cfg.circuit_breaker = breaker(v, "circuit_breaker")?;
        }
        cfg.resilience = resilience::parse(obj, "", &Resilience::default())?;
        if let Some(v) = obj.get("upstreams") {
            cfg.upstreams = routing::upstreams(
                v,
                &cfg.load_balancer,
                &cfg.circuit_breaker,
                &cfg.resilience,
                !cfg.backends.is_empty(),
                &mut backend_names,
            )?;
        }
        if let Some(v) = obj.get("timeouts") {
            cfg.timeouts = timeouts(v)?;
        }
        if let Some(v) = obj.get("limits") {
            cfg.limits = limits(v)?;
        }
        if let Some(v) = obj.get("pipeline") {
            cfg.pipeline = pipeline(v)?;
        }
        if let Some(v) = obj.get("cors") {
            cfg.cors = cors(v)?;
        }
        if let Some(v) = obj.get("tls") {
            cfg.tls = Some(tls::tls(v)?);
        }
        if let Some(v) = obj.get("consumers") {
            cfg.consumers = auth::consumers(v)?;
        }
        if let Some(v) = obj.get("routes") {
            let names = cfg.upstream_names();
            cfg.routes = routing::routes(v, &names, &cfg.consumers)?;
            cfg.place_auth_stage();
        } else if cfg.backends.is_empty() {
            return err(
                "routes",
                "required when there are no top-level backends (the catch-all route goes to \"default\")",
            );
        }
        if let Some(tokens) = field::<Vec<String>>(obj, "allowed_upgrades", "allowed_upgrades")? {
            for (i, t) in tokens.iter().enumerate() {
                if !crate::http::upgrade::is_token(t) {
                    return err(
                        &format!("allowed_upgrades[{i}]"),
                        format!(
                            "'{t}' is not a protocol name (an HTTP token such as \"websocket\")"
                        ),
                    );
                }
            }
            cfg.allowed_upgrades = tokens;
        }
        if let Some(v) = obj.get("access_log") {
            cfg.access_log = match v.as_str() {
                Some("stdout") => AccessLogTarget::Stdout,
                Some("off") => AccessLogTarget::Off,
                Some(path) if !path.is_empty() => {
                    check_log_path(path)?;
                    AccessLogTarget::File(path.into())
                }
                _ => return err("access_log", "must be \"stdout\", \"off\" or a file path"),
            };
        }
        if let Some(v) = obj.get("trace") {
            cfg.trace = trace::parse(v)?;
        }
        if let Some(v) = obj.get("trusted_proxies") {
            cfg.trusted_proxies = trusted_proxies(v)?;
        }
        if let Some(on) = field::<bool>(obj, "proxy_protocol", "proxy_protocol")? {
            cfg.proxy_protocol = on;
        }
        if cfg.proxy_protocol && cfg.tls.is_some() {
            return err(
                "proxy_protocol",
                "is not supported together with \"tls\" yet (the PROXY header would have to come before the TLS handshake)",
            );
        }
        if let Some(token) = cfg.admin_token.as_deref() {
            // Even with the admin off: a blank token is a mistake to report.
            api_gateway_admin::check_token(token)
                .map_err(|e| ConfigError(format!("admin_token: {e}")))?;
        }
        if let (Some(admin), token) = (cfg.admin, cfg.admin_token.as_deref()) {
            api_gateway_admin::check_exposure(&admin, token)
                .map_err(|e| ConfigError(format!("admin_token: {e}")))?;
        }
        // With tracing on, the data port accepts the admin token in
        // `X-Gateway-Trace-Token` and answers whether it was right (the
        // trace id comes back): a guessable token would be guessed there,
        // as on an exposed admin port (the same rule).
        let min = api_gateway_admin::auth::MIN_EXPOSED_TOKEN_CHARS;
        let exposed = !cfg.listen.ip().is_loopback()
            || cfg
                .tls
                .as_ref()
                .is_some_and(|t| !t.listen.ip().is_loopback());
        match cfg.admin_token.as_deref() {
            Some(t) if cfg.trace.enabled && exposed && t.chars().count() < min => {
                return err(
                    "admin_token",
                    format!(
                        "must be at least {min} characters with \"trace\": {{\"enabled\": true}} on a non-loopback listener (clients present it in X-Gateway-Trace-Token on the data port); it has {}",
                        t.chars().count()
                    ),
                );
            }
            _ => {}
        }
        if cfg.rate_limit.shadow.is_some() && cfg.rate_limit.store.redis().is_some() {
            return err(
                "rate_limit.shadow",
                "shadows count this gateway's requests only, while a shared store's limiter counts every gateway's: their figures would not compare (use shadows on routes' own limiters, which count locally)",
            );
        }
        Ok(cfg)
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError(format!("{path}: must be an object")))
}

fn check_keys(obj: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return err(
                &format!("{prefix}{k}"),
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            );
        }
    }
    Ok(())
}

fn from_value<T: DeserializeOwned>(v: &Value, path: &str) -> Result<T, ConfigError> {
    T::deserialize(v).map_err(|e| ConfigError(format!("{path}: {e}")))
}

fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<T>, ConfigError> {
    obj.get(key).map(|v| from_value(v, path)).transpose()
}

fn addr_field(obj: &Map<String, Value>, key: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(s) = field::<String>(obj, key, key)? else {
        return Ok(None);
    };
    resolve(&s)
        .map(Some)
        .map_err(|e| ConfigError(format!("{key}: {e}")))
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("'{s}' is not a host:port address ({e})"))?
        .next()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

/// A `backends` list at `at` (top level or an upstream's); `names` holds
/// every backend name seen so far (unique across upstreams).
fn backend_list(
    v: Option<&Value>,
    at: &str,
    names: &mut HashSet<String>,
) -> Result<Vec<BackendDef>, ConfigError> {
    let list = match v {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => return err(at, "at least one backend is required"),
        Some(_) => return err(at, "must be a list"),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let path = format!("{at}[{i}]");
        let o = as_object(b, &path)?;
        check_keys(o, &format!("{path}."), &["name", "addr", "weight", "tls"])?;
        let addr_s: String = field(o, "addr", &format!("{path}.addr"))?
            .ok_or_else(|| ConfigError(format!("{path}.addr: required")))?;
        let addr = resolve(&addr_s).map_err(|e| ConfigError(format!("{path}.addr: {e}")))?;
        if addr.port() == 0 {
            // Connecting to port 0 fails on every request: a typo, not a plan.
            return err(
                &format!("{path}.addr"),
                format!("port 0 in '{addr_s}' is not a usable backend port"),
            );
        }
        let name: String =
            field(o, "name", &format!("{path}.name"))?.unwrap_or_else(|| addr_s.clone());
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return err(
                &format!("{path}.name"),
                "must be 1-64 visible ASCII characters",
            );
        }
        if !names.insert(name.clone()) {
            return err(
                &format!("{path}.name"),
                format!("duplicate backend name '{name}'"),
            );
        }
        let weight: u32 = field(o, "weight", &format!("{path}.weight"))?.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            return err(&format!("{path}.weight"), "must be between 1 and 1000");
        }
        let tls = match o.get("tls") {
            None => None,
            Some(v) => Some(backend_tls(v, &format!("{path}.tls"), addr, &name)?),
        };
        out.push(BackendDef {
            name,
            addr,
            weight,
            tls,
        });
    }
    Ok(out)
}

/// The access log file is opened when the workers start; a missing
/// directory must fail here, naming the path, so `--check` catches it.
fn check_log_path(path: &str) -> Result<(), ConfigError> {
    let p = Path::new(path);
    if p.is_dir() {
        return err("access_log", format!("'{path}' is a directory"));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return err(
            "access_log",
            format!("directory '{}' {what}", dir.display()),
        );
    }
    Ok(())
}

/// `trusted_proxies`: a list of CIDR blocks or bare addresses.
fn trusted_proxies(v: &Value) -> Result<CidrSet, ConfigError> {
    let Value::Array(items) = v else {
        return err(
            "trusted_proxies",
            "must be a list of CIDR blocks, e.g. [\"10.0.0.0/8\", \"::1\"]",
        );
    };
    if items.len() > crate::net::cidr::MAX_BLOCKS {
        return err(
            "trusted_proxies",
            format!("at most {} entries", crate::net::cidr::MAX_BLOCKS),
        );
    }
    let mut blocks = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => blocks.push(s),
            None => return err(&format!("trusted_proxies[{i}]"), "must be a string"),
        }
    }
    CidrSet::parse(&blocks).map_err(|(i, e)| ConfigError(format!("trusted_proxies[{i}]: {e}")))
}

/// A `load_balancer` value at `at`: a name or an object with `algorithm`.
fn balancer(v: &Value, at: &str) -> Result<BalanceSpec, ConfigError> {
    match v {
        Value::String(name) => BalanceSpec::from_name(name, None),
        Value::Object(o) => {
            let name = o.get("algorithm").and_then(Value::as_str).unwrap_or("");
            BalanceSpec::from_name(name, Some(v))
        }
        _ => Err("must be a name or an object".into()),
    }
    .map_err(|e| ConfigError(format!("{at}: {e}")))
}

/// A `circuit_breaker` object at `at`.
fn breaker(v: &Value, at: &str) -> Result<BreakerSpec, ConfigError> {
    // Checked here first so the error names the entry
    // (`circuit_breaker.failure_statuses[1]: ...`).
    if let Some(list) = v.get("failure_statuses") {
        let list: Vec<Value> = from_value(list, &format!("{at}.failure_statuses"))?;
        for (i, s) in list.iter().enumerate() {
            if !s.as_u64().is_some_and(|s| (100..=599).contains(&s)) {
                return err(
                    &format!("{at}.failure_statuses[{i}]"),
                    "must be an HTTP status between 100 and 599",
                );
            }
        }
    }
    let b: BreakerSpec = from_value(v, at)?;
    b.validate().map_err(|e| ConfigError(format!("{at}.{e}")))?;
    Ok(b)
}

fn rate_limit(v: &Value) -> Result<RateLimitConfig, ConfigError> {
    rate_limit_at(v, "rate_limit")
}

/// A `rate_limit` object at `at` (top level or a route's).
fn rate_limit_at(v: &Value, at: &str) -> Result<RateLimitConfig, ConfigError> {
    let o = as_object(v, at)?;
    let mut params = o.clone();
    let key = match params.remove("key") {
        None => KeySource::ClientIp,
        Some(Value::String(s)) if s == "ip" => KeySource::ClientIp,
        Some(Value::String(s)) if s == "consumer" => KeySource::Consumer,
        Some(Value::String(s)) if s.starts_with("header:") && s.len() > 7 => {
            let h = &s[7..];
            if !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return err(&format!("{at}.key"), "header name has invalid characters");
            }
            KeySource::Header(h.to_string())
        }
        Some(_) => {
            return err(
                &format!("{at}.key"),
                "must be \"ip\", \"consumer\" or \"header:NAME\"",
            )
        }
    };
    let max_keys = match params.remove("max_keys") {
        None => 65_536,
        Some(v) => {
            let n: usize = from_value(&v, &format!("{at}.max_keys"))?;
            if !(16..=16_777_216).contains(&n) {
                return err(&format!("{at}.max_keys"), "must be between 16 and 16777216");
            }
            n
        }
    };
    let store =
        match params.remove("store") {
            None => Default::default(),
            Some(_) if at != "rate_limit" => return err(
                &format!("{at}.store"),
                "per-route limits count in this gateway only (a shared store is top-level only)",
            ),
            Some(v) => store::parse(&v)?,
        };
    let shadow = match params.remove("shadow") {
        None => None,
        Some(v) => Some(shadows(&v, &format!("{at}.shadow"))?),
    };
    let name = match params.get("algorithm") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return err(
                &format!("{at}.algorithm"),
                "required (one of the limiter names)",
            )
        }
    };
    let spec = LimitSpec::from_name(&name, Some(&Value::Object(params)))
        .map_err(|e| ConfigError(format!("{at}: {e}")))?;
    Ok(RateLimitConfig {
        spec,
        key,
        max_keys,
        store,
        shadow,
    })
}

/// `rate_limit.shadow`: `"all"` (every algorithm but the live one) or a
/// list of algorithm names (each at most once; the live one may be listed,
/// as a control).
fn shadows(v: &Value, at: &str) -> Result<Shadows, ConfigError> {
    const EXPECTED: &str = "must be \"all\" or a list of limiter names (sliding-log, sliding-counter, fixed-window, token-bucket, leaky-bucket)";
    match v {
        Value::String(s) if s == "all" => Ok(Shadows::All),
        Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Some(a) = item.as_str().and_then(Algorithm::from_name) else {
                    return err(&format!("{at}[{i}]"), EXPECTED);
                };
                if list.contains(&a) {
                    return err(
                        &format!("{at}[{i}]"),
                        format!("'{}' is listed twice", a.name()),
                    );
                }
                list.push(a);
            }
            Ok(Shadows::Only(list))
        }
        _ => err(at, EXPECTED),
    }
}

fn ms_field(
    o: &Map<String, Value>,
    key: &str,
    section: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    let path = format!("{section}.{key}");
    let v: u64 = field(o, key, &path)?.unwrap_or(default);
    if !(1..=86_400_000).contains(&v) {
        return err(&path, "must be between 1 and 86400000");
    }
    Ok(v)
}

fn timeouts(v: &Value) -> Result<Timeouts, ConfigError> {
    let o = as_object(v, "timeouts")?;
    let d = Timeouts::default();
    check_keys(
        o,
        "timeouts.",
        &[
            "connect_ms",
            "header_read_ms",
            "backend_response_ms",
            "idle_ms",
            "shutdown_grace_ms",
            "handshake_ms",
        ],
    )?;
    let handshake_ms = match o.get("handshake_ms") {
        None => None,
        Some(_) => Some(ms_field(o, "handshake_ms", "timeouts", 0)?),
    };
    Ok(Timeouts {
        handshake_ms,
        connect_ms: ms_field(o, "connect_ms", "timeouts", d.connect_ms)?,
        header_read_ms: ms_field(o, "header_read_ms", "timeouts", d.header_read_ms)?,
        backend_response_ms: ms_field(o, "backend_response_ms", "timeouts", d.backend_response_ms)?,
        idle_ms: ms_field(o, "idle_ms", "timeouts", d.idle_ms)?,
        shutdown_grace_ms: ms_field(o, "shutdown_grace_ms", "timeouts", d.shutdown_grace_ms)?,
    })
}

fn limits(v: &Value) -> Result<Limits, ConfigError> {
    let o = as_object(v, "limits")?;
    let d = Limits::default();
    check_keys(
        o,
        "limits.",
        &[
            "max_header_bytes",
            "max_body_bytes",
            "max_connections",
            "max_uri_bytes",
            "max_idle_per_backend",
            "min_body_bytes_per_sec",
        ],
    )?;
    let bounded = |key: &str, default: u64, lo: u64, hi: u64| -> Result<u64, ConfigError> {
        let path = format!("limits.{key}");
        let v: u64 = field(o, key, &path)?.unwrap_or(default);
        if !(lo..=hi).contains(&v) {
            return err(&path, format!("must be between {lo} and {hi}"));
        }
        Ok(v)
    };
    let max_header_bytes =
        bounded("max_header_bytes", d.max_header_bytes as u64, 1024, 1 << 20)? as usize;
    Ok(Limits {
        max_header_bytes,
        max_body_bytes: bounded("max_body_bytes", d.max_body_bytes, 0, 1 << 40)?,
        max_connections: bounded("max_connections", d.max_connections as u64, 1, 1_000_000)?
            as usize,
        max_uri_bytes: bounded(
            "max_uri_bytes",
            d.max_uri_bytes.min(max_header_bytes) as u64,
            16,
            max_header_bytes as u64,
        )? as usize,
        max_idle_per_backend: bounded(
            "max_idle_per_backend",
            d.max_idle_per_backend as u64,
            0,
            10_000,
        )? as usize,
        min_body_bytes_per_sec: bounded(
            "min_body_bytes_per_sec",
            d.min_body_bytes_per_sec,
            0,
            1 << 30,
        )?,
    })
}

/// A backend's `tls`: `server_name` (default: the address's IP),
/// `ca_file` (default: Mozilla's roots), `insecure_skip_verify`.
fn backend_tls(
    v: &Value,
    at: &str,
    addr: SocketAddr,
    backend: &str,
) -> Result<std::sync::Arc<crate::tls::UpstreamTls>, ConfigError> {
    let o = as_object(v, at)?;
    check_keys(
        o,
        &format!("{at}."),
        &["server_name", "ca_file", "insecure_skip_verify"],
    )?;
    let name: Option<String> = field(o, "server_name", &format!("{at}.server_name"))?;
    let ca: Option<String> = field(o, "ca_file", &format!("{at}.ca_file"))?;
    let insecure: bool = field(
        o,
        "insecure_skip_verify",
        &format!("{at}.insecure_skip_verify"),
    )?
    .unwrap_or(false);
    if insecure && ca.is_some() {
        return err(at, "has both ca_file and insecure_skip_verify (choose one)");
    }
    if insecure {
        log::warn!(
            "backend {backend}: TLS certificate verification is OFF (insecure_skip_verify): anyone on the path can impersonate it"
        );
    }
    crate::tls::UpstreamTls::new(name.as_deref(), ca.as_deref(), insecure, addr, at)
        .map(std::sync::Arc::new)
        .map_err(ConfigError)
}

fn pipeline(v: &Value) -> Result<Vec<Stage>, ConfigError> {
    let names: Vec<String> = from_value(v, "pipeline")?;
    let mut stages = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let stage = Stage::from_name(n).ok_or_else(|| {
            ConfigError(format!(
                "pipeline[{i}]: unknown stage '{n}' (valid: {})",
                Stage::ALL
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if stages.contains(&stage) {
            return err(
                &format!("pipeline[{i}]"),
                format!("stage '{n}' listed twice"),
            );
        }
        stages.push(stage);
    }
    if stages.last() != Some(&Stage::Proxy) {
        return err("pipeline", "must end with \"proxy\"");
    }
    let at = |s: Stage| stages.iter().position(|&x| x == s);
    if let (Some(a), Some(r)) = (at(Stage::Auth), at(Stage::RateLimit)) {
        if a > r {
            return err(
                &format!("pipeline[{a}]"),
                "\"auth\" must come before \"rate-limit\" (per-consumer limits need the consumer)",
            );
        }
    }
    Ok(stages)
}

impl Config {
    /// With routes that authenticate, a pipeline that does not name `auth`
    /// gets it just before the first stage that must know the caller
    /// (`rate-limit`, else `circuit-breaker`, else `proxy`): after `cors`,
    /// so a preflight (which carries no credentials) is still answered.
    /// Loading a file does this; code that builds a `Config` by hand and
    /// adds `auth` to a route calls it (the gateway refuses to start a
    /// config whose routes authenticate without the stage).
    pub fn place_auth_stage(&mut self) {
        if self.pipeline.contains(&Stage::Auth) || self.routes.iter().all(|r| r.auth.is_none()) {
            return;
        }
        let at = self
            .pipeline
            .iter()
            .position(|s| matches!(s, Stage::RateLimit | Stage::CircuitBreaker | Stage::Proxy))
            .unwrap_or(self.pipeline.len());
        self.pipeline.insert(at, Stage::Auth);
    }
}

fn cors(v: &Value) -> Result<CorsConfig, ConfigError> {
    let o = as_object(v, "cors")?;
    check_keys(
        o,
        "cors.",
        &[
            "allow_origins",
            "allow_methods",
            "allow_headers",
            "max_age_secs",
        ],
    )?;
    let d = CorsConfig::default();
    let header_safe = |path: &str, s: String| -> Result<String, ConfigError> {
        if s.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            Ok(s)
        } else {
            err(path, "must be printable ASCII")
        }
    };
    let allow_origins: Vec<String> =
        field(o, "allow_origins", "cors.allow_origins")?.unwrap_or(d.allow_origins);
    for (i, origin) in allow_origins.iter().enumerate() {
        header_safe(&format!("cors.allow_origins[{i}]"), origin.clone())?;
    }
    Ok(CorsConfig {
        allow_origins,
        allow_methods: header_safe(
            "cors.allow_methods",
            field(o, "allow_methods", "cors.allow_methods")?.unwrap_or(d.allow_methods),
        )?,
        allow_headers: header_safe(
            "cors.allow_headers",
            field(o, "allow_headers", "cors.allow_headers")?.unwrap_or(d.allow_headers),
        )?,
        max_age_secs: field(o, "max_age_secs", "cors.max_age_secs")?.unwrap_or(d.max_age_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"listen":"127.0.0.1:4000","admin":"127.0.0.1:4001",
 "backends":[{"name":"Backend-A","addr":"127.0.0.1:3001","weight":3}],
 "load_balancer":"round-robin",
 "rate_limit":{"algorithm":"token-bucket","capacity":20,"refill_per_sec":10},
 "circuit_breaker":{"failure_threshold":3,"window_ms":10000,"open_ms":15000},
 "timeouts":{"connect_ms":1000,"header_read_ms":5000,"backend_response_ms":30000,"idle_ms":60000},
 "limits":{"max_header_bytes":16384,"max_body_bytes":10485760,"max_connections":10000}}"#;

    #[test]
    fn the_issue_example_loads() {
        let c = Config::from_json(EXAMPLE).unwrap();
        assert_eq!(c.backends[0].weight, 3);
        assert_eq!(
            c.rate_limit.spec,
            LimitSpec::TokenBucket {
                capacity: 20,
                refill_per_sec: 10.0
            }
        );
        assert_eq!(c.timeouts.connect_ms, 1000);
        assert_eq!(c.limits.max_connections, 10_000);
        assert_eq!(c.pipeline, DEFAULT_PIPELINE.to_vec());
    }

    fn error_of(patch: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        patch(&mut v);
        Config::from_json(&v.to_string()).unwrap_err().0
    }

    #[test]
    fn errors_name_the_field() {
        assert!(error_of(|v| v["timeouts"]["connect_ms"] = "x".into())
            .starts_with("timeouts.connect_ms:"));
        assert!(error_of(|v| v["limits"]["max_conections"] = 1.into())
            .starts_with("limits.max_conections:"));
        assert!(error_of(|v| v["backends"][0]["addr"] = "nowhere".into())
            .starts_with("backends[0].addr:"));
        assert!(error_of(|v| v["rate_limit"]["capacity"] = 0.into()).contains("capacity"));
        assert!(
            error_of(|v| v["pipeline"] = serde_json::json!(["logger", "bogus", "proxy"]))
                .starts_with("pipeline[1]: unknown stage 'bogus'")
        );
        assert!(
            error_of(|v| v["pipeline"] = serde_json::json!(["proxy", "logger"]))
                .contains("must end")
        );
        assert!(error_of(|v| v["load_balancer"] = "random".into()).contains("round-robin"));
        assert!(error_of(|v| v["admin"] = "0.0.0.0:4001".into()).starts_with("admin_token:"));
    }

    #[test]
    fn admin_token_traps_name_the_field() {
        for blank in ["", " ", "\t \n"] {
            for admin in [
                Value::from("127.0.0.1:4001"),
                Value::from("0.0.0.0:4001"),
                Value::Null,
            ] {
                let e = error_of(|v| {
                    v["admin"] = admin.clone();
                    v["admin_token"] = blank.into();
                });
                assert!(e.starts_with("admin_token: must not be blank"), "{e}");
            }
        }
        let e = error_of(|v| {
            v["admin"] = "0.0.0.0:4001".into();
            v["admin_token"] = "short-token".into();
        });
        assert!(
            e.starts_with("admin_token: must be at least 16 characters"),
            "{e}"
        );
        // Short is fine on loopback; 16 characters are fine anywhere.
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["admin_token"] = "short".into();
        Config::from_json(&v.to_string()).unwrap();
        v["admin"] = "0.0.0.0:4001".into();
        v["admin_token"] = "0123456789abcdef".into();
        Config::from_json(&v.to_string()).unwrap();
        assert!(error_of(|v| v["listn"] = "x".into()).starts_with("listn: unknown field"));
        assert!(error_of(
            |v| v["circuit_breaker"]["failure_statuses"] = serde_json::json!([500, 600])
        )
        .starts_with("circuit_breaker.failure_statuses[1]:"));
        assert!(
            error_of(|v| v["circuit_breaker"]["failure_statuses"] = serde_json::json!(["500"]))
                .starts_with("circuit_breaker.failure_statuses[0]:")
        );
        assert!(
            error_of(|v| v["circuit_breaker"]["failure_statuses"] = 500.into())
                .starts_with("circuit_breaker.failure_statuses:")
        );
        assert!(
            error_of(|v| v["circuit_breaker"]["max_open_ratio"] = 1.5.into())
                .starts_with("circuit_breaker.max_open_ratio")
        );
        assert!(error_of(|v| v["circuit_breaker"]["max_open"] = 1.into()).contains("max_open"));
    }

    #[test]
    fn breaker_defaults_in_files_and_in_the_demo() {
        // A file gets the production defaults, with or without the section.
        let c = Config::from_json(EXAMPLE).unwrap();
        assert_eq!(c.circuit_breaker, BreakerSpec::default());
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v.as_object_mut().unwrap().remove("circuit_breaker");
        let c = Config::from_json(&v.to_string()).unwrap();
        assert_eq!(c.circuit_breaker, BreakerSpec::default());
        assert!(!c.circuit_breaker.failure_statuses.contains(500));
        assert_eq!(c.circuit_breaker.max_open_ratio, 0.5);
        // The demo counts its crashed backends' 500s and may open every circuit.
        let d = Config::demo().circuit_breaker;
        assert_eq!(d.failure_statuses.to_vec(), [500, 502, 503, 504]);
        assert_eq!(d.max_open_ratio, 1.0);
        v["circuit_breaker"] = serde_json::json!({"failure_statuses": [], "max_open_ratio": 0.0});
        let c = Config::from_json(&v.to_string()).unwrap();
        assert!(c.circuit_breaker.failure_statuses.to_vec().is_empty());
        assert_eq!(c.circuit_breaker.failure_threshold, 3);
    }

    #[test]
    fn allowed_upgrades_are_tokens() {
        assert_eq!(
            Config::from_json(EXAMPLE).unwrap().allowed_upgrades,
            ["websocket"]
        );
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["allowed_upgrades"] = serde_json::json!(["WebSocket", "h2c"]);
        let c = Config::from_json(&v.to_string()).unwrap();
        assert_eq!(c.allowed_upgrades, ["WebSocket", "h2c"]);
        v["allowed_upgrades"] = serde_json::json!([]);
        assert!(Config::from_json(&v.to_string())
            .unwrap()
            .allowed_upgrades
            .is_empty());
        for bad in [
            serde_json::json!(["websocket", "web socket"]),
            serde_json::json!(["websocket", ""]),
            serde_json::json!(["websocket", "websocket/13"]),
        ] {
            let e = error_of(|v| v["allowed_upgrades"] = bad);
            assert!(e.starts_with("allowed_upgrades[1]: "), "{e}");
        }
        assert!(error_of(|v| v["allowed_upgrades"] = "websocket".into())
            .starts_with("allowed_upgrades: invalid type"));
    }

    #[test]
    fn min_body_rate_errors_name_the_field() {
        assert!(
            error_of(|v| v["limits"]["min_body_bytes_per_sec"] = (2u64 << 30).into())
                .starts_with("limits.min_body_bytes_per_sec: must be between 0 and")
        );
        assert!(
            error_of(|v| v["limits"]["min_body_bytes_per_sec"] = (-1).into())
                .starts_with("limits.min_body_bytes_per_sec:")
        );
    }

    #[test]
    fn rate_limit_shadow_is_all_or_a_list_of_limiter_names() {
        let parse = |shadow: Value| {
            let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
            v["rate_limit"]["shadow"] = shadow;
            Config::from_json(&v.to_string()).map(|c| c.rate_limit.shadow)
        };
        assert_eq!(parse("all".into()).unwrap(), Some(Shadows::All));
        assert_eq!(
            parse(serde_json::json!(["sliding-log", "leaky-bucket"])).unwrap(),
            Some(Shadows::Only(vec![
                Algorithm::SlidingLog,
                Algorithm::LeakyBucket
            ]))
        );
        assert_eq!(
            parse(serde_json::json!([])).unwrap(),
            Some(Shadows::Only(vec![]))
        );
        assert_eq!(Config::from_json(EXAMPLE).unwrap().rate_limit.shadow, None);
        // Beside a shared store's limiter, local shadows would not compare.
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["rate_limit"]["shadow"] = "all".into();
        v["rate_limit"]["store"] =
            serde_json::json!({"kind": "redis", "url": "redis://127.0.0.1:6379"});
        let e = Config::from_json(&v.to_string()).unwrap_err().0;
        assert!(
            e.starts_with("rate_limit.shadow: shadows count this gateway's"),
            "{e}"
        );
        for (bad, at) in [
            (Value::from("most"), "rate_limit.shadow:"),
            (Value::from(true), "rate_limit.shadow:"),
            (
                serde_json::json!(["sliding-log", "nope"]),
                "rate_limit.shadow[1]:",
            ),
            (
                serde_json::json!(["token-bucket", "token-bucket"]),
                "rate_limit.shadow[1]: 'token-bucket' is listed twice",
            ),
        ] {
            let e = parse(bad.clone()).unwrap_err().0;
            assert!(e.starts_with(at), "{bad}: {e}");
        }
    }

    #[test]
    fn min_body_rate_defaults_to_1024_and_0_disables() {
        assert_eq!(
            Config::from_json(EXAMPLE)
                .unwrap()
                .limits
                .min_body_bytes_per_sec,
            1024
        );
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["limits"]["min_body_bytes_per_sec"] = 0.into();
        let c = Config::from_json(&v.to_string()).unwrap();
        assert_eq!(c.limits.min_body_bytes_per_sec, 0);
    }

    /// A key given twice is an error naming its path, at any depth; before,
    /// `Value` kept the last one silently.
    #[test]
    fn duplicate_keys_are_errors_naming_the_path() {
        let dup = |from: &str, to: &str| {
            assert_eq!(EXAMPLE.matches(from).count(), 1, "{from}");
            Config::from_json(&EXAMPLE.replace(from, to)).unwrap_err().0
        };
        let e = dup(r#""capacity":20,"#, r#""capacity":20,"capacity":2000,"#);
        assert!(e.starts_with("rate_limit.capacity: duplicate key"), "{e}");
        let e = dup(
            r#""listen":"127.0.0.1:4000","#,
            r#""listen":"127.0.0.1:4000","listen":"127.0.0.1:4002","#,
        );
        assert!(e.starts_with("listen: duplicate key"), "{e}");
        let e = dup(r#""weight":3"#, r#""weight":3,"weight":1"#);
        assert!(e.starts_with("backends[0].weight: duplicate key"), "{e}");
        // Syntax errors are still reported as such.
        assert!(Config::from_json("{")
            .unwrap_err()
            .0
            .starts_with("invalid JSON"));
    }

    #[test]
    fn access_log_directory_must_exist() {
        let e = error_of(|v| v["access_log"] = "/nonexistent-gw-dir/x/access.log".into());
        assert_eq!(
            e,
            "access_log: directory '/nonexistent-gw-dir/x' does not exist"
        );
        let file = std::env::temp_dir().join(format!("gw-cfg-file-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        let under_file = format!("{}/access.log", file.display());
        let e = error_of(|v| v["access_log"] = under_file.clone().into());
        let _ = std::fs::remove_file(&file);
        assert!(e.ends_with("is not a directory"), "{e}");
        let dir = std::env::temp_dir();
        let e = error_of(|v| v["access_log"] = dir.to_string_lossy().into_owned().into());
        assert!(e.ends_with("is a directory"), "{e}");
        let ok = dir.join("gw-access-ok.log");
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["access_log"] = ok.to_string_lossy().into_owned().into();
        let c = Config::from_json(&v.to_string()).unwrap();
        assert_eq!(
            c.access_log,
            AccessLogTarget::File(ok.to_string_lossy().into())
        );
        assert!(!ok.exists(), "checking must not create the file");
        // A bare file name is in the working directory, which exists.
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["access_log"] = "access.log".into();
        assert!(Config::from_json(&v.to_string()).is_ok());
    }

    #[test]
    fn backend_port_zero_is_an_error() {
        let e = error_of(|v| v["backends"][0]["addr"] = "127.0.0.1:0".into());
        assert!(e.starts_with("backends[0].addr: port 0"), "{e}");
    }

    #[test]
    fn trusted_proxies_and_proxy_protocol() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["trusted_proxies"] = serde_json::json!(["10.0.0.0/8", "127.0.0.1", "::1/128"]);
        v["proxy_protocol"] = true.into();
        let c = Config::from_json(&v.to_string()).unwrap();
        let shown: Vec<String> = c
            .trusted_proxies
            .blocks()
            .iter()
            .map(|b| b.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        assert!(c.proxy_protocol);
        let d = Config::from_json(EXAMPLE).unwrap();
        assert!(d.trusted_proxies.is_empty() && !d.proxy_protocol);

        let e =
            error_of(|v| v["trusted_proxies"] = serde_json::json!(["10.0.0.0/8", "10.0.0.0/33"]));
        assert!(
            e.starts_with("trusted_proxies[1]: '10.0.0.0/33': prefix length"),
            "{e}"
        );
        let e = error_of(|v| v["trusted_proxies"] = serde_json::json!(["10.0.0.1/8"]));
        assert!(
            e.starts_with("trusted_proxies[0]: '10.0.0.1/8' has host bits set"),
            "{e}"
        );
        let e = error_of(|v| v["trusted_proxies"] = serde_json::json!(["::1", 7]));
        assert_eq!(e, "trusted_proxies[1]: must be a string");
        let e = error_of(|v| v["trusted_proxies"] = "10.0.0.0/8".into());
        assert!(e.starts_with("trusted_proxies: must be a list"), "{e}");
        let e = error_of(|v| v["proxy_protocol"] = "yes".into());
        assert!(e.starts_with("proxy_protocol: invalid type"), "{e}");
    }
}
