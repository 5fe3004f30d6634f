//! The dashboard in a real browser: headless Chromium (Debian's `chromium`,
//! driven over the DevTools protocol by `headless_chrome`) loads the page
//! from a running gateway's admin port, and the test clicks like a person:
//! switch the load balancer, crash a demo backend, fire bursts, switch the
//! rate limiter, and reads the outcome from the page (the circuit badge turns
//! OPEN, the load tester shows 429s). It then saves a screenshot to
//! `target/dashboard.png`; with `UPDATE_DASHBOARD_PNG=1` also to
//! `admin/dashboard.png` (the README's picture).
//!
//! The admin runs with a token and the page is opened as `/#token=...`,
//! which is how an operator opens a token-protected dashboard.
//!
//! A second test runs the page on a config with two upstreams and routes:
//! one box per upstream, and clicking one upstream's balancer switch changes
//! that upstream only (read back through the API and `x-lb-algorithm`); the
//! route table counts live. Its screenshot is `target/dashboard-routes.png`.
//!
//! A third runs a config with consumers and routes that need auth: the route
//! table marks those routes (and not the open one), and the Consumers card
//! lists each consumer, whose requests counter goes up after an
//! authenticated request through the gateway; refusals show by reason. Its
//! screenshot is `target/dashboard-consumers.png`.
//!
//! A fourth adds an HTTPS listener with two certificates (made here with
//! rcgen), one of them expiring in about ten days: the TLS card shows the
//! listener, both certificates with their days to expiry (the short one
//! marked), the handshake counters after a real handshake and a plain
//! request to the HTTPS port, and never a key file. It then feeds the page
//! an expired certificate (a health answer amended in the browser) to see
//! the error mark. Screenshots: `target/dashboard-tls.png`, and
//! `target/dashboard-tls-expired.png` with the amended answer.
//!
//! A fifth runs a token bucket of 20 at 0.5/s with every shadow limiter
//! (`rate_limit.shadow = all`): after a burst of 50 the Shadow limiters card
//! lists the five algorithms, the live one first with 30 would-rejects, each
//! figure as `GET /gateway/rate-limiter/shadow` reports it, the translated
//! parameters (20 per 40 s), the agreement with live, and the sliding log
//! (the exact reference) never overshooting while the live bucket, refilled
//! a few seconds later, shows its `+2 (1.10×)`. A gateway without
//! `/gateway/trace` (answers amended to 404 in the browser) leaves the
//! Decision trace card saying so, without an error. Clicking Promote on the
//! sliding log makes it the live limiter (the page, the shadow report and
//! `/gateway/health` agree). Screenshots: `target/dashboard-shadow.png`
//! (before the promote; with `UPDATE_DASHBOARD_PNG=1` the limiter cards and
//! the panel also go to `admin/dashboard-shadow.png`) and
//! `target/dashboard-shadow-promoted.png`.
//!
//! A sixth turns tracing on (on demand only, nothing sampled) beside a fixed
//! window of 2 per minute and every shadow limiter, and sends three requests
//! asking for a trace (200, 200, 429) and one that does not ask: the Last
//! decisions list shows the three (status, verdict), never the fourth.
//! Clicking the 429 draws route, rate-limit (stopped: `deny`, its
//! `retry_after_s` the response's `Retry-After`), shadows and the 429
//! reply; clicking a 200, or typing its id, draws the admitted limiter, the
//! circuits, the balancer's pick (the response's `x-backend`) and the
//! backend's 200 with its timings. Screenshot: `target/dashboard-trace.png`
//! (with `UPDATE_DASHBOARD_PNG=1` the card also goes to
//! `admin/dashboard-trace.png`).
//!
//! The tests take turns (one browser at a time).
//!
//! Without `/usr/bin/chromium` (or `$CHROMIUM`) the tests print why and
//! pass, unless `CI` is set: then a missing browser is a failure.

mod admin_rig;
mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use admin_rig::Rig;
use api_gateway::algo::limit::shadow::Shadows;
use api_gateway::backend::BackendDef;
use api_gateway::config::{RouteConfig, UpstreamConfig};
use api_gateway::demo::DemoBackend;
use api_gateway::Config;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use headless_chrome::protocol::cdp::Page::{self, CaptureScreenshotFormatOption};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

const TOKEN: &str = "browser-test-token";
const WAIT: Duration = Duration::from_secs(20);

/// One browser at a time: each test drives its own Chromium, and two at
/// once would only compete for the same cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "browser test: no Chromium at {} (apt-get install -y chromium, or set CHROMIUM)",
        path.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg}; CI is set, so this is a failure"
    );
    eprintln!("SKIPPED {msg}");
    None
}

fn launch(path: PathBuf, profile: &Path) -> Browser {
    let args: Vec<&OsStr> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let opts = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1360, 900)))
        .user_data_dir(Some(profile.to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(args)
        .build()
        .expect("launch options");
    Browser::new(opts).expect("chromium starts")
}

/// Evaluates `js` in the page and returns its JSON value.
/// A Chromium with its own profile directory (removed when dropped) and
/// one tab showing the dashboard of `admin`, live.
struct Dashboard {
    tab: std::sync::Arc<Tab>,
    browser: Option<Browser>,
    profile: PathBuf,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        // The browser must be gone before its profile is removed.
        self.browser.take();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Opens the dashboard of `admin` with the admin token in the URL fragment
/// and waits until it is live.
fn open_dashboard(chromium: PathBuf, name: &str, admin: std::net::SocketAddr) -> Dashboard {
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chromium-profile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let browser = launch(chromium, &profile);
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(WAIT);
    let url = format!("http://{admin}/#token={TOKEN}");
    tab.navigate_to(&url)
        .and_then(|t| t.wait_until_navigated())
        .expect("dashboard loads");
    wait_for(&tab, "live status", &text_of("#conn-status"), "live".into());
    Dashboard {
        tab,
        browser: Some(browser),
        profile,
    }
}

fn eval(tab: &Tab, js: &str) -> Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("evaluate {js}: {e}"))
        .value
        .unwrap_or(Value::Null)
}

/// Waits until `js` evaluates to `want` in the page.
fn wait_for(tab: &Tab, what: &str, js: &str, want: Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = eval(tab, js);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "page never showed {what}: `{js}` is {got}, want {want}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector)
        .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

fn text_of(selector: &str) -> String {
    let quoted = serde_json::to_string(selector).unwrap();
    format!("(document.querySelector({quoted}) || {{}}).textContent")
}

/// A PNG of the whole page (not just the viewport), scaled by `scale`.
/// Saves the whole page, toasts removed (they are transient), under
/// `target/NAME`.
fn screenshot(tab: &Tab, name: &str) {
    eval(
        tab,
        "document.querySelectorAll('.toast').forEach(t => t.remove()); window.scrollTo(0, 0)",
    );
    let png = full_page(tab, 1.0);
    let out = target_dir().join(name);
    std::fs::write(&out, &png).expect("write screenshot");
    eprintln!(
        "dashboard screenshot: {} ({} bytes)",
        out.display(),
        png.len()
    );
}

fn full_page(tab: &Tab, scale: f64) -> Vec<u8> {
    let size = eval(
        tab,
        "JSON.stringify([document.documentElement.scrollWidth, document.documentElement.scrollHeight])",
    );
    let [w, h]: [f64; 2] = serde_json::from_str(size.as_str().unwrap()).unwrap();
    capture(tab, [0.0, 0.0, w, h], scale)
}

/// A PNG of the page area `[x, y, width, height]` (CSS pixels from the top
/// of the document), scaled by `scale`.
fn capture(tab: &Tab, [x, y, width, height]: [f64; 4], scale: f64) -> Vec<u8> {
    let shot = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Page::Viewport {
                x,
                y,
                width,
                height,
                scale,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(true),
            optimize_for_speed: None,
        })
        .expect("screenshot");
    BASE64_STANDARD.decode(shot.data).expect("base64 PNG")
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`, wherever CARGO_TARGET_DIR points.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

#[test]
fn dashboard_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        // Keep the tripped circuit OPEN for the whole test and screenshot.
        c.circuit_breaker.open_ms = 120_000;
    });
    // The page opens with the token in the fragment (never sent to a server).
    let page = open_dashboard(chromium, "main", rig.admin);
    let tab = page.tab.clone();
    wait_for(
        tab.as_ref(),
        "three backend cards",
        "document.querySelectorAll('.backend').length",
        3.into(),
    );
    wait_for(
        tab.as_ref(),
        "the token removed from the address bar",
        "location.hash",
        "".into(),
    );

    // 1. Switch the load balancer by clicking its button.
    click(&tab, "[data-balancer='weighted-round-robin']");
    wait_for(
        &tab,
        "balancer switched",
        &text_of("#current-balancer"),
        "weighted-round-robin".into(),
    );
    assert_eq!(
        rig.health()["loadBalancer"]["algorithm"],
        "weighted-round-robin"
    );
    wait_for(
        &tab,
        "active button",
        "document.querySelector('[data-balancer=\"weighted-round-robin\"]').classList.contains('active')",
        true.into(),
    );

    // 2. Crash Backend-A by clicking; the label follows the backend's state.
    let crash = "[data-backend='Backend-A'] [data-action='crash']";
    wait_for(&tab, "crash label", &text_of(crash), "Crash".into());
    click(&tab, crash);
    wait_for(&tab, "recover label", &text_of(crash), "Recover".into());
    assert!(rig.demo("Backend-A").is_crashed());

    // 3. A burst of 20 sends A its share of failures: its circuit opens.
    click(&tab, "[data-burst='20']");
    wait_for(
        &tab,
        "first burst done",
        "document.querySelector('#loadtest-result').dataset.state",
        "done".into(),
    );
    let badge = "[data-backend='Backend-A'] .circuit-state";
    wait_for(
        &tab,
        "Backend-A circuit OPEN",
        &text_of(badge),
        "OPEN".into(),
    );
    assert_eq!(rig.backend("Backend-A")["circuitState"], "OPEN");
    wait_for(
        &tab,
        "card marked open",
        "document.querySelector('[data-backend=\"Backend-A\"]').dataset.circuit",
        "OPEN".into(),
    );

    // 4. Token bucket (capacity 20 by default), then a burst of 50: the
    //    load tester shows successes and 429s that add up.
    click(&tab, "[data-limiter='token-bucket']");
    wait_for(
        &tab,
        "limiter switched",
        &text_of("#current-limiter"),
        "token-bucket".into(),
    );
    click(&tab, "[data-burst='50']");
    wait_for(
        &tab,
        "burst of 50 done",
        "document.querySelector('#loadtest-result').dataset.state === 'done' && \
         document.querySelector('.lt-meta').textContent.startsWith('burst of 50:')",
        true.into(),
    );
    let counts = eval(
        &tab,
        "JSON.stringify(['ok','limited','unavailable','errors'].map(k => \
         Number(document.querySelector(`[data-count=${k}] .lt-num`).textContent.replace(/,/g, ''))))",
    );
    let counts: Vec<u64> = serde_json::from_str(counts.as_str().unwrap()).unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 50, "{counts:?}");
    // The bucket (20, plus at most a refill token or two at 2/s during the
    // burst) succeeds; everything else is limited, nothing fails.
    assert!((20..=22).contains(&counts[0]), "bucket of 20: {counts:?}");
    assert_eq!(counts[0] + counts[1], 50, "the rest limited: {counts:?}");
    // The event log shows the admin actions and the circuit transition.
    wait_for(
        &tab,
        "circuit event in the log",
        "[...document.querySelectorAll('.event-msg')].some(e => /Backend-A.*OPEN/.test(e.textContent))",
        true.into(),
    );
    // Wait for a poll after the burst so the chart and tiles show it.
    wait_for(
        &tab,
        "tiles updated",
        "Number(document.querySelector('#stat-limited').textContent.replace(/,/g, '')) >= 25",
        true.into(),
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('.event[data-source=\"ui\"]').length"
        ),
        Value::from(0),
        "no UI-side failures"
    );
    thread::sleep(Duration::from_millis(1200));

    screenshot(&tab, "dashboard.png");
    if std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        // Scaled down for the README: a readable picture well under 300 KB.
        let png = full_page(&tab, 0.75);
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin/dashboard.png");
        std::fs::write(&readme, &png).expect("write admin/dashboard.png");
        eprintln!("updated {} ({} bytes)", readme.display(), png.len());
    }
}

#[test]
fn upstream_balancer_switch_and_route_table_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let users: Vec<DemoBackend> = ["Users-1", "Users-2"]
        .iter()
        .map(|n| DemoBackend::spawn(n, "127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.upstreams = vec![UpstreamConfig {
            name: "users".into(),
            backends: users
                .iter()
                .map(|d| BackendDef {
                    name: d.name().into(),
                    addr: d.addr(),
                    weight: 1,
                    tls: None,
                })
                .collect(),
            load_balancer: c.load_balancer.clone(),
            circuit_breaker: c.circuit_breaker,
            resilience: Default::default(),
        }];
        let mut api = RouteConfig::prefix(0, "/api/users");
        api.name = "users-api".into();
        api.upstream = "users".into();
        let mut site = RouteConfig::prefix(1, "/");
        site.name = "site".into();
        c.routes = vec![api, site];
    });
    let page = open_dashboard(chromium, "routes", rig.admin);
    let tab = page.tab.clone();
    wait_for(
        &tab,
        "one box per upstream",
        "[...document.querySelectorAll('.upstream')].map(u => u.dataset.upstream).join(',')",
        "default,users".into(),
    );
    wait_for(
        &tab,
        "the users box holds its two cards",
        "[...document.querySelectorAll('[data-upstream=\"users\"] .backend')].map(b => b.dataset.backend).join(',')",
        "Users-1,Users-2".into(),
    );
    wait_for(
        &tab,
        "route table shown",
        "!document.querySelector('#routes-card').hidden && \
         [...document.querySelectorAll('#routes tr')].map(r => r.dataset.route).join(',')",
        "users-api,site".into(),
    );

    // Click one upstream's balancer switch: that upstream changes, not `default`.
    let lb_of = |path: &str| {
        let r = rig.proxied_path(path);
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-lb-algorithm").unwrap_or("-").to_string()
    };
    assert_eq!(lb_of("/api/users"), "round-robin");
    click(
        &tab,
        "[data-upstream='users'] [data-upstream-balancer='ip-hash']",
    );
    wait_for(
        &tab,
        "users box shows ip-hash",
        "document.querySelector('[data-upstream=\"users\"]').dataset.balancer",
        "ip-hash".into(),
    );
    wait_for(
        &tab,
        "active switch",
        "document.querySelector('[data-upstream=\"users\"] [data-upstream-balancer=\"ip-hash\"]').classList.contains('active')",
        true.into(),
    );
    let ups = rig.get("/gateway/upstreams").json();
    let algo = |name: &str| {
        ups["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["loadBalancer"]["algorithm"].clone())
            .unwrap()
    };
    assert_eq!(algo("users"), "ip-hash");
    assert_eq!(algo("default"), "round-robin");
    assert_eq!(rig.health()["loadBalancer"]["algorithm"], "round-robin");
    assert_eq!(
        dataset_of(&tab, "[data-upstream='default']", "balancer"),
        "round-robin"
    );
    assert_eq!(lb_of("/api/users"), "ip-hash");
    assert_eq!(lb_of("/elsewhere"), "round-robin");

    // The route table counts live: 2 + 3 requests on users-api.
    for _ in 0..3 {
        assert_eq!(lb_of("/api/users/7"), "ip-hash");
    }
    wait_for(
        &tab,
        "users-api counted",
        &text_of("[data-route='users-api'] [data-col='requests']"),
        "5".into(),
    );
    wait_for(
        &tab,
        "site counted",
        &text_of("[data-route='site'] [data-col='2xx']"),
        "1".into(),
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('.event[data-source=\"ui\"]').length"
        ),
        Value::from(0),
        "no UI-side failures"
    );
    screenshot(&tab, "dashboard-routes.png");
}

/// The consumers and routes of the auth test, in the config contract's JSON:
/// alice may call `admin` (API key in `X-API-Key`), bob has his own limit,
/// `orders` takes a JWT, `site` is open. The one backend is a placeholder
/// so the JSON names `default`; the rig's demo backends serve `default`.
const AUTH_CONFIG: &str = r#"{
  "listen": "127.0.0.1:0",
  "backends": [{"addr": "127.0.0.1:9"}],
  "consumers": [
    {"name": "alice", "api_keys": ["k-alice-1"]},
    {"name": "bob", "api_keys": ["k-bob-1", "k-bob-2"],
     "rate_limit": {"algorithm": "token-bucket", "capacity": 5, "refill_per_sec": 1}}
  ],
  "routes": [
    {"name": "admin", "path_prefix": "/admin", "upstream": "default",
     "auth": {"api_key": {"header": "X-API-Key"}, "allow": ["alice"]}},
    {"name": "orders", "path_prefix": "/orders", "upstream": "default",
     "auth": {"jwt": {"algorithms": ["HS256"], "secret": "browser-test-secret",
                      "issuer": "https://id.example.test", "audience": "orders"}},
     "rate_limit": {"algorithm": "token-bucket", "capacity": 20, "refill_per_sec": 5, "key": "consumer"}},
    {"name": "site", "path_prefix": "/", "upstream": "default"}
  ]
}"#;

#[test]
fn consumers_and_auth_routes_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let auth = Config::from_json(AUTH_CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.consumers = auth.consumers;
        c.routes = auth.routes;
        // The parsed pipeline has the auth stage placed in it.
        c.pipeline = auth.pipeline;
    });
    let page = open_dashboard(chromium, "auth", rig.admin);
    let tab = page.tab.clone();

    // The routes that need auth carry the marker, the open one does not.
    wait_for(
        &tab,
        "route table shown",
        "[...document.querySelectorAll('#routes tr')].map(r => r.dataset.route).join(',')",
        "admin,orders,site".into(),
    );
    let marker = |route: &str| {
        eval(
            &tab,
            &format!(
                "(document.querySelector('[data-route=\"{route}\"] .auth-badge') || {{}}).textContent || null"
            ),
        )
    };
    assert_eq!(marker("admin"), "API key");
    assert_eq!(marker("orders"), "JWT");
    assert_eq!(marker("site"), Value::Null, "an open route has no marker");
    assert_eq!(
        dataset_of(&tab, "[data-route='site']", "auth"),
        "open",
        "the open route"
    );
    let title = eval(
        &tab,
        "document.querySelector('[data-route=\"admin\"] .auth-badge').title",
    );
    let title = title.as_str().unwrap();
    assert!(
        title.contains("X-API-Key") && title.contains("Allowed: alice"),
        "{title}"
    );

    // The Consumers card: one row per consumer, counters at zero.
    wait_for(
        &tab,
        "consumers card shown",
        "!document.querySelector('#consumers-card').hidden && \
         [...document.querySelectorAll('#consumers tr')].map(r => r.dataset.consumer).join(',')",
        "alice,bob".into(),
    );
    let alice = |col: &str| text_of(&format!("[data-consumer='alice'] [data-col='{col}']"));
    assert_eq!(eval(&tab, &alice("requests")), "0");
    assert_eq!(eval(&tab, &alice("keys")), "1");
    assert_eq!(eval(&tab, &alice("routes")), "admin, orders");
    assert_eq!(
        eval(&tab, &text_of("[data-consumer='bob'] [data-col='limit']")),
        "token-bucket · 5 burst, 1/s"
    );

    // An authenticated request through the gateway: alice's counter goes up.
    let call = |key: Option<&str>| {
        let key = key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default();
        let raw = format!("GET /admin/stats HTTP/1.1\r\nHost: test\r\n{key}\r\n");
        support::request(rig.gw.listen_addr(), raw.as_bytes()).status
    };
    assert_eq!(call(Some("k-alice-1")), 200);
    wait_for(&tab, "alice counted", &alice("requests"), "1".into());
    // Refusals: bob is not on admin's allow list (403, his), no key (401).
    assert_eq!(call(Some("k-bob-2")), 403);
    assert_eq!(call(None), 401);
    wait_for(
        &tab,
        "bob's 403",
        &text_of("[data-consumer='bob'] [data-col='403']"),
        "1".into(),
    );
    wait_for(
        &tab,
        "failures by reason",
        "['missing','forbidden','unknown'].map(r => \
         document.querySelector(`#auth-failures [data-reason=${r}] b`).textContent).join(',')",
        "1,1,0".into(),
    );
    assert_eq!(eval(&tab, &alice("requests")), "1");
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('.event[data-source=\"ui\"]').length"
        ),
        Value::from(0),
        "no UI-side failures"
    );
    // No key anywhere on the page.
    assert_eq!(
        eval(&tab, "document.body.innerText.includes('k-alice-1')"),
        Value::Bool(false)
    );
    screenshot(&tab, "dashboard-consumers.png");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn tls_listener_and_certificates_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let pki = support::pki::Pki::new("dashboard-tls");
    // a.test expires at midnight UTC 11 days from today: 10 whole days left.
    let short = pki.leaf_until("a-test", &["a.test", "*.a.test"], 11);
    let long = pki.leaf_until("default", &["localhost"], 400);
    let (short_cert, short_key) = (short.cert.as_str(), short.key.as_str());
    let (long_cert, long_key) = (long.cert.as_str(), long.key.as_str());
    let json = serde_json::json!({
        "listen": "127.0.0.1:0",
        "backends": [{"addr": "127.0.0.1:9"}],
        "tls": {"listen": "127.0.0.1:0", "certificates": [
            {"cert": short_cert, "key": short_key, "hosts": ["a.test", "*.a.test"]},
            {"cert": long_cert, "key": long_key},
        ]},
    });
    let tls = Config::from_json(&json.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .tls;
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.tls = tls;
    });
    let https = rig.gw.tls_addr().expect("an HTTPS listener");

    let page = open_dashboard(chromium, "tls", rig.admin);
    let tab = page.tab.clone();

    // The card, the listener and its settings.
    wait_for(
        &tab,
        "TLS card shown",
        "!document.querySelector('#tls-card').hidden",
        true.into(),
    );
    assert_eq!(eval(&tab, &text_of("#tls-listen")), https.to_string());
    assert_eq!(eval(&tab, &text_of("#tls-min-version")), "TLS 1.2");
    assert_eq!(eval(&tab, &text_of("#tls-redirect")), "off");

    // One row per certificate, in config order, with its days to expiry
    // as the gateway counts them (10 and 399, unless midnight UTC passed).
    let health = rig.health();
    let certs = health["tls"]["certificates"].as_array().unwrap().clone();
    let days: Vec<i64> = certs
        .iter()
        .map(|c| c["expires_in_days"].as_i64().unwrap())
        .collect();
    assert!((9..=10).contains(&days[0]), "{days:?}");
    assert!((398..=399).contains(&days[1]), "{days:?}");
    wait_for(
        &tab,
        "both certificates listed",
        "JSON.stringify([...document.querySelectorAll('#tls-certs tr')].map(r => r.dataset.cert))",
        serde_json::to_string(&[&short_cert, &long_cert])
            .unwrap()
            .into(),
    );
    let cell = |cert: &str, col: &str| {
        let cert = serde_json::to_string(cert).unwrap();
        eval(
            &tab,
            &format!(
                "[...document.querySelectorAll('#tls-certs tr')].find(r => r.dataset.cert === {cert})\
                 .querySelector('[data-col={col}]').textContent"
            ),
        )
    };
    let row_data = |i: usize, key: &str| {
        eval(
            &tab,
            &format!("document.querySelectorAll('#tls-certs tr')[{i}].dataset.{key}"),
        )
    };
    assert_eq!(cell(short_cert, "hosts"), "a.test, *.a.test");
    assert_eq!(cell(long_cert, "hosts"), "default");
    assert_eq!(
        cell(short_cert, "expiry"),
        format!("EXPIRES SOON{} days", days[0])
    );
    assert_eq!(cell(long_cert, "expiry"), format!("{} days", days[1]));
    assert_eq!(row_data(0, "expiry"), "warning", "the short one is marked");
    assert_eq!(row_data(1, "expiry"), "ok", "the long one is not");
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('#tls-certs tr[data-expiry=\"warning\"] .tls-mark').length"
        ),
        Value::from(1)
    );
    assert_eq!(
        eval(&tab, &text_of("#tls-alert")),
        "1 expiring within 30 days"
    );
    let title = eval(
        &tab,
        "document.querySelector('#tls-certs tr [data-col=expiry]').title",
    );
    assert!(
        title.as_str().unwrap().starts_with("Valid until 20"),
        "{title}"
    );

    // Handshakes: one real one (and a request through it), one plain
    // request to the HTTPS port.
    assert_eq!(wait_text(&tab, "[data-handshake='ok'] b"), "0");
    let mut tls = support::pki::tls_connect(https, "a.test", pki.client()).unwrap();
    std::io::Write::write_all(
        tls.get_mut(),
        b"GET /api/users HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = support::read_response(&mut tls, false).unwrap();
    assert_eq!(r.status, 200);
    {
        use std::io::{Read, Write};
        let mut plain = support::connect(https);
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    wait_for(
        &tab,
        "handshakes counted",
        "['ok','not_tls','unknown_name','protocol','incomplete'].map(r => \
         document.querySelector(`#tls-handshakes [data-handshake=${r}] b`).textContent).join(',')",
        "1,1,0,0,0".into(),
    );

    // The key files appear nowhere in the page, not even in a tooltip.
    for key in [&short_key, &long_key] {
        let quoted = serde_json::to_string(key).unwrap();
        assert_eq!(
            eval(
                &tab,
                &format!("document.documentElement.outerHTML.includes({quoted})")
            ),
            Value::Bool(false),
            "{key} shown"
        );
    }
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('.event[data-source=\"ui\"]').length"
        ),
        Value::from(0),
        "no UI-side failures"
    );
    screenshot(&tab, "dashboard-tls.png");

    // An expired certificate, fed to the page by amending the health
    // answers in the browser (the gateway loads only what it was given).
    let expired_at = unix_now() - 3 * 86_400 - 3600;
    eval(
        &tab,
        &format!(
            "(() => {{ const real = window.fetch; window.fetch = async (...a) => {{ \
               const r = await real(...a); \
               if (!String(a[0]).endsWith('/gateway/health')) return r; \
               const h = await r.json(); \
               h.tls.certificates.push({{cert: '/etc/gw/old.pem', hosts: ['old.test'], default: false, \
                 not_after: {expired_at}, expires_in_days: -4}}); \
               return new Response(JSON.stringify(h), {{headers: {{'content-type': 'application/json'}}}}); }}; \
               return true; }})()"
        ),
    );
    wait_for(
        &tab,
        "the expired certificate marked",
        "(document.querySelectorAll('#tls-certs tr')[2] || {dataset: {}}).dataset.expiry",
        "expired".into(),
    );
    assert_eq!(cell("/etc/gw/old.pem", "expiry"), "EXPIRED3 days ago");
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('#tls-certs tr[data-expiry=\"expired\"] .tls-mark').className"
        ),
        "badge badge-expired tls-mark"
    );
    assert_eq!(
        eval(&tab, &text_of("#tls-alert")),
        "1 expired · 1 expiring within 30 days"
    );
    screenshot(&tab, "dashboard-tls-expired.png");
}

/// The text of `selector` once the element exists.
fn wait_text(tab: &Tab, selector: &str) -> Value {
    wait_for(
        tab,
        selector,
        &format!(
            "!!document.querySelector({})",
            serde_json::to_string(selector).unwrap()
        ),
        true.into(),
    );
    eval(tab, &text_of(selector))
}

/// `dataset[key]` of the element `selector`.
fn dataset_of(tab: &Tab, selector: &str, key: &str) -> Value {
    let quoted = serde_json::to_string(selector).unwrap();
    eval(
        tab,
        &format!("(document.querySelector({quoted}) || {{dataset: {{}}}}).dataset.{key}"),
    )
}

/// A PNG of the part of the page covering every element of `selectors`
/// (their union, with a small margin), scaled by `scale`.
fn clip_png(tab: &Tab, selectors: &[&str], scale: f64) -> Vec<u8> {
    let list = serde_json::to_string(selectors).unwrap();
    let rect = eval(
        tab,
        &format!(
            "(() => {{ const rs = {list}.map(s => document.querySelector(s).getBoundingClientRect()); \
               const x = Math.min(...rs.map(r => r.left)), y = Math.min(...rs.map(r => r.top)); \
               const w = Math.max(...rs.map(r => r.right)) - x, h = Math.max(...rs.map(r => r.bottom)) - y; \
               return JSON.stringify([x + scrollX - 8, y + scrollY - 8, w + 16, h + 16]); }})()"
        ),
    );
    let [x, y, width, height]: [f64; 4] = serde_json::from_str(rect.as_str().unwrap()).unwrap();
    capture(tab, [x.max(0.0), y.max(0.0), width, height], scale)
}

/// The row of `algorithm` in scope `route` (`None`: top level) of a
/// `GET /gateway/rate-limiter/shadow` answer.
fn shadow_row(report: &Value, route: Option<&str>, algorithm: &str) -> Value {
    report["limiters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["route"].as_str() == route)
        .and_then(|l| {
            l["algorithms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["algorithm"] == algorithm)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {algorithm} in {report:#}"))
}

#[test]
fn shadow_panel_and_promote_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    // A bucket of 20 refilled once every 2 s: in window form 20 per 40 s.
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.rate_limit.spec = api_gateway_admin::LimitSpec::TokenBucket {
            capacity: 20,
            refill_per_sec: 0.5,
        };
        c.rate_limit.shadow = Some(Shadows::All);
    });
    let page = open_dashboard(chromium, "shadow", rig.admin);
    let tab = page.tab.clone();
    let rows =
        "[...document.querySelectorAll('#shadow-rows tr')].map(r => r.dataset.algorithm).join(',')";
    wait_for(
        &tab,
        "the shadow panel on",
        "document.querySelector('#shadow-panel').dataset.state",
        "on".into(),
    );
    wait_for(
        &tab,
        "the live algorithm first, then its four shadows",
        &format!("{rows}.split(',').length + ':' + {rows}.split(',')[0]"),
        "5:token-bucket".into(),
    );
    assert_eq!(
        eval(&tab, &text_of("#current-limiter")),
        "token-bucket",
        "the Rate limiter card"
    );

    // 50 requests at once (the bucket refills one token per 2 s).
    let start = Instant::now();
    let statuses: Vec<u16> = (0..50).map(|_| rig.proxied().status).collect();
    let burst = start.elapsed();
    let limited = statuses.iter().filter(|&&s| s == 429).count() as u64;
    assert_eq!(
        limited + statuses.iter().filter(|&&s| s == 200).count() as u64,
        50
    );
    let refilled = (burst.as_secs_f64() * 0.5).floor() as u64;
    assert!(
        (30 - refilled..=30).contains(&limited),
        "{limited} limited in {burst:?}"
    );
    let report = rig.get("/gateway/rate-limiter/shadow").json();
    assert_eq!(
        shadow_row(&report, None, "token-bucket")["would_reject"],
        limited
    );

    // The page shows each algorithm's figures as the API reports them.
    let cell = |algorithm: &str, field: &str| {
        format!(
            "(document.querySelector('#shadow-rows tr[data-algorithm=\"{algorithm}\"] [data-field=\"{field}\"]') || {{dataset: {{}}}})"
        )
    };
    let value = |algorithm: &str, field: &str| format!("{}.dataset.value", cell(algorithm, field));
    let text = |algorithm: &str, field: &str| format!("{}.textContent", cell(algorithm, field));
    wait_for(
        &tab,
        "the live row's would-reject",
        &value("token-bucket", "would_reject"),
        limited.to_string().into(),
    );
    assert_eq!(limited, 30, "a burst of 50 takes well under 2 s");
    assert_eq!(
        dataset_of(&tab, "#shadow-rows tr:first-child", "live"),
        "true"
    );
    let shadows = [
        "fixed-window",
        "sliding-log",
        "sliding-counter",
        "leaky-bucket",
    ];
    for algorithm in shadows {
        let row = shadow_row(&report, None, algorithm);
        assert_eq!(row["live"], false, "{algorithm}");
        assert_eq!(
            eval(&tab, &value(algorithm, "would_reject")),
            row["would_reject"].to_string(),
            "{algorithm}"
        );
        // The agreement with live, as a percentage.
        let agreement = eval(&tab, &text(algorithm, "agreement"));
        let pct = format!(
            "{}%",
            (row["agreement"]["rate"].as_f64().unwrap() * 100.0).round()
        );
        assert_eq!(agreement, pct, "{algorithm}");
        // Every shadow can be promoted; the live one cannot.
        assert_eq!(
            eval(
                &tab,
                &format!("document.querySelector('[data-promote=\"{algorithm}\"]').hidden")
            ),
            Value::Bool(false),
            "{algorithm}"
        );
    }
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-promote=\"token-bucket\"]').hidden"
        ),
        Value::Bool(true)
    );
    // The translated parameters: a bucket of 20 at 0.5/s is 20 per 40 s.
    assert_eq!(eval(&tab, &text("sliding-log", "params")), "20 per 40s");
    assert_eq!(
        eval(&tab, &text("token-bucket", "params")),
        "20 burst, 0.5/s"
    );
    // The sliding log is the exact reference: it never overshoots.
    assert_eq!(eval(&tab, &value("sliding-log", "overshoot")), "0");
    assert_eq!(eval(&tab, &text("sliding-log", "overshoot")), "0");
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('tr[data-algorithm=\"sliding-log\"]').classList.contains('shadow-ref')"
        ),
        Value::Bool(true)
    );

    // Five seconds after the burst the bucket has refilled two tokens:
    // 22 admitted within 40 s is 2 beyond the limit the sliding log keeps.
    let wait = Duration::from_secs(5).saturating_sub(start.elapsed());
    thread::sleep(wait);
    let more: Vec<u16> = (0..5).map(|_| rig.proxied().status).collect();
    assert!(more.contains(&200), "{more:?}");
    let report = rig.get("/gateway/rate-limiter/shadow").json();
    let live = shadow_row(&report, None, "token-bucket");
    let over = live["accuracy"]["overshoot"].as_u64().unwrap();
    assert!(over >= 2, "{live:#}");
    let shown = format!(
        "+{over} ({:.2}×)",
        live["accuracy"]["overshoot_ratio"].as_f64().unwrap()
    );
    wait_for(
        &tab,
        "the live bucket's overshoot",
        &text("token-bucket", "overshoot"),
        shown.into(),
    );
    assert_eq!(
        shadow_row(&report, None, "sliding-log")["accuracy"]["overshoot"],
        0
    );
    assert_eq!(eval(&tab, &value("sliding-log", "overshoot")), "0");
    wait_for(
        &tab,
        "the sliding log disagrees with live now",
        &text("sliding-log", "agreement"),
        format!(
            "{}%",
            (shadow_row(&report, None, "sliding-log")["agreement"]["rate"]
                .as_f64()
                .unwrap()
                * 100.0)
                .round()
        )
        .into(),
    );

    // No tracing here (or, once it exists, a gateway without it): the
    // trace card says so, and nothing is reported as a failure.
    eval(
        &tab,
        "(() => { const real = window.fetch; window.fetch = async (...a) => { \
           if (/\\/gateway\\/trace(\\/|$)/.test(String(a[0]))) \
             return new Response('{\"error\":\"not found\"}', {status: 404, headers: {'content-type': 'application/json'}}); \
           return real(...a); }; \
           const d = window.gatewayDashboard; \
           d.pollTrace().then(() => d.openTrace('42')); return true; })()",
    );
    wait_for(
        &tab,
        "tracing not available",
        "document.querySelector('#trace-panel').dataset.state + ':' + \
         document.querySelector('#trace-list').textContent + ':' + document.querySelector('#trace-view').textContent",
        "unavailable:Tracing is not available on this gateway.:Tracing is not available on this gateway.".into(),
    );
    let no_failures = "document.querySelectorAll('.event[data-source=\"ui\"], .toast-bad').length";
    assert_eq!(
        eval(&tab, no_failures),
        Value::from(0),
        "no UI-side failures"
    );

    screenshot(&tab, "dashboard-shadow.png");
    if std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        // The README's picture: the limiter cards and the shadow panel.
        let png = clip_png(&tab, &[".two-col", "#shadow-panel"], 1.0);
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin/dashboard-shadow.png");
        std::fs::write(&readme, &png).expect("write admin/dashboard-shadow.png");
        eprintln!("updated {} ({} bytes)", readme.display(), png.len());
    }

    // Promote the sliding log: the live switch with its translated spec.
    let log_spec = shadow_row(&report, None, "sliding-log")["spec"].clone();
    click(&tab, "button[data-promote='sliding-log']");
    wait_for(
        &tab,
        "the Rate limiter card shows the promoted algorithm",
        &text_of("#current-limiter"),
        "sliding-log".into(),
    );
    wait_for(
        &tab,
        "the sliding log first and live",
        &format!("{rows}.split(',')[0] + ':' + document.querySelector('#shadow-rows tr:first-child').dataset.live"),
        "sliding-log:true".into(),
    );
    wait_for(
        &tab,
        "the limiter button active",
        "document.querySelector('[data-limiter=\"sliding-log\"]').classList.contains('active')",
        true.into(),
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-promote=\"sliding-log\"]').hidden && \
             !document.querySelector('[data-promote=\"token-bucket\"]').hidden"
        ),
        Value::Bool(true),
        "the old live algorithm is now a shadow to promote back"
    );
    let report = rig.get("/gateway/rate-limiter/shadow").json();
    assert_eq!(report["limiters"][0]["live"], "sliding-log");
    let promoted = shadow_row(&report, None, "sliding-log");
    assert_eq!(promoted["live"], true);
    assert_eq!(promoted["spec"], log_spec);
    assert_eq!(
        log_spec,
        serde_json::json!({"algorithm": "sliding-log", "limit": 20, "window_ms": 40000})
    );
    let health = rig.health();
    assert_eq!(health["rateLimiter"]["algorithm"], "sliding-log");
    assert_eq!(health["rateLimiter"]["limit"], 20);
    assert_eq!(health["rateLimiter"]["window_ms"], 40000);
    assert_eq!(
        eval(&tab, no_failures),
        Value::from(0),
        "no UI-side failures"
    );
    screenshot(&tab, "dashboard-shadow-promoted.png");
}

/// The stages of the trace drawn in the Decision trace card, in order, as
/// `stage:outcome`.
const TRACE_STRIP: &str = "[...document.querySelectorAll('#trace-view .trace-strip [data-stage]')]\
     .map(s => s.dataset.stage + ':' + s.dataset.outcome).join(',')";

/// The fields the card lists for the drawn trace's stage `stage` (its
/// first one), as `{name: text}`, and its line in the strip as `line`.
fn trace_fields(tab: &Tab, stage: &str) -> Value {
    let quoted = serde_json::to_string(stage).unwrap();
    let json = eval(
        tab,
        &format!(
            "(() => {{ const boxes = [...document.querySelectorAll('#trace-view .trace-strip [data-stage]')]; \
               const i = boxes.findIndex(b => b.dataset.stage === {quoted}); \
               if (i < 0) return 'null'; \
               const f = document.querySelector(`#trace-view [data-stage-fields=\"${{i}}\"]`); \
               const out = Object.fromEntries([...f.querySelectorAll('dl > div')] \
                 .map(d => [d.querySelector('dt').textContent, d.querySelector('dd').textContent])); \
               out.line = boxes[i].querySelector('.stage-detail').textContent; \
               return JSON.stringify(out); }})()"
        ),
    );
    serde_json::from_str(json.as_str().expect("a string")).unwrap()
}

/// Waits until the card draws trace `id` (opened by a click or by id).
fn wait_trace_shown(tab: &Tab, id: &str) {
    wait_for(
        tab,
        &format!("trace {id} drawn"),
        "(v => v.dataset.state + ':' + v.dataset.traceId)(document.querySelector('#trace-view'))",
        format!("shown:{id}").into(),
    );
}

#[test]
fn decision_trace_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    // Two requests a minute, every shadow limiter watching, and traces
    // only for the requests that ask (nothing sampled).
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.trace.enabled = true;
        c.trace.sample_per_million = 0;
        c.rate_limit.spec = api_gateway_admin::LimitSpec::FixedWindow {
            limit: 2,
            window_ms: 60_000,
        };
        c.rate_limit.shadow = Some(Shadows::All);
    });
    let page = open_dashboard(chromium, "trace", rig.admin);
    let tab = page.tab.clone();
    wait_for(
        &tab,
        "the trace card on, nothing traced yet",
        "document.querySelector('#trace-panel').dataset.state",
        "empty".into(),
    );
    // On demand only: the header is honoured, nothing is sampled.
    assert_eq!(
        eval(&tab, &text_of("#trace-status")),
        "on demand (X-Gateway-Trace) · no sampling · keeps the last 256"
    );
    let howto = eval(&tab, &text_of("#trace-list .trace-howto"));
    assert_eq!(
        howto,
        format!(
            "No request traced yet. Trace one on demand: curl -H 'X-Gateway-Trace: 1' http://{}/…",
            rig.gw.listen_addr()
        )
    );

    let send = |asked: bool| {
        let ask = if asked { "X-Gateway-Trace: 1\r\n" } else { "" };
        let raw = format!("GET /api/users HTTP/1.1\r\nHost: test\r\n{ask}\r\n");
        support::request(rig.gw.listen_addr(), raw.as_bytes())
    };
    let trace_id = |r: &support::Response| {
        r.header("x-gateway-trace-id")
            .unwrap_or_else(|| panic!("no X-Gateway-Trace-Id: {:?}", r.headers))
            .to_string()
    };
    let ok1 = send(true);
    let ok2 = send(true);
    // Not asked: limited like any other, but never traced.
    let quiet = send(false);
    let limited = send(true);
    assert_eq!(
        [ok1.status, ok2.status, quiet.status, limited.status],
        [200, 200, 429, 429]
    );
    assert_eq!(quiet.header("x-gateway-trace-id"), None);
    let ids = [trace_id(&ok1), trace_id(&ok2), trace_id(&limited)];
    let retry_after = limited.header("retry-after").expect("Retry-After");
    let pick = |r: &support::Response| r.header("x-backend").expect("x-backend").to_string();

    // The Last decisions list: the three traced requests, newest first,
    // and not the one that did not ask (the gateway holds only three).
    let newest_first = format!("{},{},{}", ids[2], ids[1], ids[0]);
    wait_for(
        &tab,
        "the three traced requests listed",
        "[...document.querySelectorAll('#trace-list li[data-trace-id]')].map(l => l.dataset.traceId).join(',')",
        newest_first.into(),
    );
    assert_eq!(
        rig.get("/gateway/trace").json()["traces"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(dataset_of(&tab, "#trace-panel", "state"), "on");
    let item = |id: &str| {
        eval(
            &tab,
            &format!(
                "[...document.querySelectorAll('#trace-list li[data-trace-id=\"{id}\"] span')]\
                 .map(s => s.textContent).slice(0, 3).join(' ')"
            ),
        )
    };
    assert_eq!(item(&ids[0]), "200 GET /api/users proxied");
    assert_eq!(item(&ids[1]), "200 GET /api/users proxied");
    assert_eq!(item(&ids[2]), "429 GET /api/users rate-limited");

    // The 429: routed, denied by the limiter (with the response's
    // Retry-After), seen by the shadows, answered by the gateway.
    click(&tab, &format!("#trace-list li[data-trace-id='{}']", ids[2]));
    wait_trace_shown(&tab, &ids[2]);
    assert_eq!(
        eval(&tab, TRACE_STRIP),
        "route:pass,rate-limit:stop,shadows:pass,reply:stop"
    );
    // No routes configured: the catch-all matched (no route name), and it
    // is not a miss.
    let route = trace_fields(&tab, "route");
    assert_eq!(
        (&route["route"], &route["matched"], &route["line"]),
        (&"–".into(), &"true".into(), &"default".into()),
        "{route:#}"
    );
    let rl = trace_fields(&tab, "rate-limit");
    assert_eq!(rl["verdict"], "deny", "{rl:#}");
    assert_eq!(rl["retry_after_s"], retry_after, "{rl:#}");
    assert_eq!(rl["algorithm"], "fixed-window", "{rl:#}");
    assert_eq!((&rl["before"], &rl["after"]), (&"0".into(), &"0".into()));
    assert_eq!(
        rl["line"],
        format!("deny · fixed-window · 0→0 of 2 · retry {retry_after}s")
    );
    let shadows = trace_fields(&tab, "shadows");
    assert_eq!(shadows["line"], "4 of 4 would reject", "{shadows:#}");
    let reply = trace_fields(&tab, "reply");
    assert_eq!(reply["status"], "429", "{reply:#}");
    assert_eq!(reply["error"], "rate limit exceeded", "{reply:#}");
    assert_eq!(reply["line"], "429 · rate limit exceeded");
    assert_eq!(
        eval(
            &tab,
            &format!("document.querySelector('#trace-list li[data-trace-id=\"{}\"]').classList.contains('active')", ids[2])
        ),
        Value::Bool(true),
        "the open trace marked in the list"
    );

    // A 200: admitted, circuits looked at, the balancer's pick is the
    // backend that answered.
    let proxied = |tab: &Tab, id: &str, r: &support::Response, before: &str, after: &str| {
        wait_trace_shown(tab, id);
        assert_eq!(
            eval(tab, TRACE_STRIP),
            "route:pass,rate-limit:pass,shadows:pass,circuit-breaker:pass,load-balancer:pass,backend:pass"
        );
        let rl = trace_fields(tab, "rate-limit");
        assert_eq!(rl["verdict"], "allow", "{rl:#}");
        assert_eq!(
            (rl["before"].as_str(), rl["after"].as_str()),
            (Some(before), Some(after))
        );
        let cb = trace_fields(tab, "circuit-breaker");
        assert_eq!(cb["excluded"], "[]", "{cb:#}");
        assert_eq!(cb["line"], "3 backends, 0 excluded", "{cb:#}");
        let lb = trace_fields(tab, "load-balancer");
        assert_eq!(lb["pick"], pick(r), "{lb:#}");
        assert_eq!(lb["line"], format!("round-robin · → {}", pick(r)), "{lb:#}");
        for (name, _) in admin_rig::BACKENDS {
            assert!(lb["candidates"].as_str().unwrap().contains(name), "{lb:#}");
        }
        let backend = trace_fields(tab, "backend");
        assert_eq!(backend["backend"], pick(r), "{backend:#}");
        assert_eq!(backend["status"], "200", "{backend:#}");
        assert!(
            backend["timings"].as_str().unwrap().contains("last_byte="),
            "{backend:#}"
        );
        let line = backend["line"].as_str().unwrap().to_string();
        assert!(
            line.starts_with(&format!("{} · 200 · ", pick(r))) && line.ends_with(" ms"),
            "{line}"
        );
    };
    click(&tab, &format!("#trace-list li[data-trace-id='{}']", ids[0]));
    proxied(&tab, &ids[0], &ok1, "2", "1");

    // The other by its id, typed into the card's input.
    tab.wait_for_element("#trace-id")
        .and_then(|e| e.type_into(&ids[1]).map(|_| ()))
        .expect("type the trace id");
    tab.press_key("Enter").expect("submit");
    proxied(&tab, &ids[1], &ok2, "1", "0");

    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('.event[data-source=\"ui\"], .toast-bad').length"
        ),
        Value::from(0),
        "no UI-side failures"
    );

    // The pictures show the 429.
    click(&tab, &format!("#trace-list li[data-trace-id='{}']", ids[2]));
    wait_trace_shown(&tab, &ids[2]);
    eval(&tab, "document.querySelector('#trace-id').value = ''");
    screenshot(&tab, "dashboard-trace.png");
    if std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        let png = clip_png(&tab, &["#trace-panel"], 1.0);
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin/dashboard-trace.png");
        std::fs::write(&readme, &png).expect("write admin/dashboard-trace.png");
        eprintln!("updated {} ({} bytes)", readme.display(), png.len());
    }
}
