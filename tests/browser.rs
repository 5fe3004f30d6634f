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
//! Without `/usr/bin/chromium` (or `$CHROMIUM`) the test prints why and
//! passes, unless `CI` is set: then a missing browser is a failure.

mod admin_rig;
mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use admin_rig::Rig;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use headless_chrome::protocol::cdp::Page::{self, CaptureScreenshotFormatOption};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

const TOKEN: &str = "browser-test-token";
const WAIT: Duration = Duration::from_secs(20);

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
fn full_page(tab: &Tab, scale: f64) -> Vec<u8> {
    let size = eval(
        tab,
        "JSON.stringify([document.documentElement.scrollWidth, document.documentElement.scrollHeight])",
    );
    let [w, h]: [f64; 2] = serde_json::from_str(size.as_str().unwrap()).unwrap();
    let shot = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Page::Viewport {
                x: 0.0,
                y: 0.0,
                width: w,
                height: h,
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
    let rig = Rig::start_with(|c| {
        c.admin_token = Some(TOKEN.into());
        // Keep the tripped circuit OPEN for the whole test and screenshot.
        c.circuit_breaker.open_ms = 120_000;
    });
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chromium-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let browser = launch(chromium, &profile);
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(WAIT);

    // Open the page with the token in the fragment (never sent to a server).
    let url = format!("http://{}/#token={TOKEN}", rig.admin);
    tab.navigate_to(&url)
        .and_then(|t| t.wait_until_navigated())
        .expect("dashboard loads");
    wait_for(
        tab.as_ref(),
        "live status",
        &text_of("#conn-status"),
        "live".into(),
    );
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

    // Toasts are transient: keep them out of the picture.
    eval(
        &tab,
        "document.querySelectorAll('.toast').forEach(t => t.remove()); window.scrollTo(0, 0)",
    );
    let png = full_page(&tab, 1.0);
    let out = target_dir().join("dashboard.png");
    std::fs::write(&out, &png).expect("write screenshot");
    eprintln!(
        "dashboard screenshot: {} ({} bytes)",
        out.display(),
        png.len()
    );
    if std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        // Scaled down for the README: a readable picture well under 300 KB.
        let png = full_page(&tab, 0.75);
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin/dashboard.png");
        std::fs::write(&readme, &png).expect("write admin/dashboard.png");
        eprintln!("updated {} ({} bytes)", readme.display(), png.len());
    }
    drop(tab);
    drop(browser);
    let _ = std::fs::remove_dir_all(&profile);
}
