//! The `api-gateway` binary: parse arguments, load the config (or start the
//! demo), run the gateway until SIGINT/SIGTERM, exit 0 after a graceful stop.
//!
//! Exit codes: 0 clean stop, 1 bad configuration, 2 start-up failure.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use api_gateway::demo::DemoBackend;
use api_gateway::reload::ConfigSource;
use api_gateway::{Config, Gateway};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};

const USAGE: &str = "\
api-gateway: a small, fast HTTP/1.1 API gateway

USAGE:
    api-gateway                   start the demo (3 backends on :3001-3003, gateway on :4000, admin on :4001)
    api-gateway --config FILE     start with a JSON config file
    api-gateway --config FILE --demo-backends
                                  same, and start a demo backend on every backend address
                                  (to try a config such as examples/routes.json on one machine)
    api-gateway --check FILE      validate a config file and exit

SIGNALS:
    SIGHUP                        reload the config file live (in-flight requests finish on the old one)
    SIGINT, SIGTERM               graceful shutdown

ENVIRONMENT:
    API_GATEWAY_LOG=error|warn|info|debug|trace   log level (default: info)
";

/// The demo's config: [`Config::demo`] (also the base every config file
/// starts from) plus what the demo shows off: every shadow limiter beside
/// the live one, and decision traces (asked for with `X-Gateway-Trace: 1`,
/// trusted on loopback, where the demo listens; and 5% sampled, so the
/// dashboard's "last decisions" fill while you click).
fn demo_config() -> Config {
    let mut c = Config::demo();
    c.rate_limit.shadow = Some(api_gateway::algo::limit::shadow::Shadows::All);
    c.trace.enabled = true;
    c.trace.sample_per_million = 50_000;
    c
}

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, source, demo) = match args.as_slice() {
        [] => (demo_config(), ConfigSource::inline(), true),
        [flag, path] | [flag, path, _]
            if flag == "--config" || flag == "-c" || flag == "--check" =>
        {
            let demo_backends = match args.get(2).map(String::as_str) {
                None => false,
                Some("--demo-backends") if flag != "--check" => true,
                Some(_) => {
                    eprint!("{USAGE}");
                    return ExitCode::from(1);
                }
            };
            match ConfigSource::file(PathBuf::from(path)) {
                Ok((c, _)) if flag == "--check" => {
                    let ups = c.all_upstreams();
                    println!(
                        "{path}: OK ({} backends in {} upstreams, {} routes, listen {})",
                        ups.iter().map(|u| u.backends.len()).sum::<usize>(),
                        ups.len(),
                        c.routes.len(),
                        c.listen
                    );
                    return ExitCode::SUCCESS;
                }
                Ok((c, source)) => (c, source, demo_backends),
                Err(e) => {
                    eprintln!("api-gateway: config error: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        [flag] if flag == "--help" || flag == "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag == "--version" || flag == "-V" => {
            println!("api-gateway {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(1);
        }
    };

    // Demo backends live as long as `main`; dropping them stops them.
    let mut backends = Vec::new();
    if demo {
        for b in config.all_upstreams().iter().flat_map(|u| &u.backends) {
            match DemoBackend::spawn(&b.name, b.addr) {
                Ok(d) => backends.push(d),
                Err(e) => {
                    eprintln!(
                        "api-gateway: cannot start demo backend: {e} (is another demo running?)"
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }

    let gateway = match Gateway::start_with(config, source) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("api-gateway: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = gateway.stop_handle();
    let control = gateway.command_handle();
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("api-gateway: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGHUP {
                // The whole config file again, certificates included; the
                // gateway logs the outcome (and what was not applied).
                log::info!("SIGHUP: reloading the config");
                let _ = control.command(api_gateway_admin::Command::ReloadConfig);
                continue;
            }
            log::info!("signal {sig} received: graceful shutdown");
            stop.stop();
            break;
        }
    });
    if demo && args.is_empty() {
        print_banner(&gateway, &backends);
    }
    gateway.wait();
    drop(backends);
    ExitCode::SUCCESS
}

fn init_logging() {
    let level = match std::env::var("API_GATEWAY_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("off") => LevelFilter::Off,
        _ => LevelFilter::Info,
    };
    let cfg = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let _ = TermLogger::init(level, cfg, TerminalMode::Stderr, ColorChoice::Auto);
}

fn print_banner(gateway: &Gateway, backends: &[DemoBackend]) {
    let gw = gateway.listen_addr();
    let admin = gateway
        .admin_addr()
        .map(|a| format!("http://{a}/"))
        .unwrap_or_else(|| "(disabled)".into());
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{} http://{}", b.name(), b.addr()))
        .collect();
    println!(
        "
  api-gateway demo is running
  ---------------------------
  Gateway     http://{gw}
  Dashboard   {admin}
  Backends    {}

  Try:
    curl -i http://{gw}/api/users
    for i in 1 2 3 4 5 6; do curl -s http://{gw}/api/users | grep -o '\"server\":\"[^\"]*\"'; done
    curl -s -X POST -H 'X-Demo-Admin: 1' http://{}/admin/crash    # crash Backend-A, then watch its circuit open

  Ctrl-C stops everything gracefully. Access log follows.
",
        list.join(", "),
        backends
            .first()
            .map(|b| b.addr().to_string())
            .unwrap_or_default()
    );
}
