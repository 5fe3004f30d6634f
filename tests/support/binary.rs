//! The real `api-gateway` binary as a child process, for tests that need a
//! process of its own (a small `RLIMIT_NOFILE`, signals, its exit status).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A port that was free a moment ago (the binary binds it itself).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The gateway binary started on a config file, under `ulimit -n nofile`
/// (a shell that `exec`s the gateway, so the limit is the gateway's own).
/// Killed on drop if a failing assertion unwinds past it.
pub struct GatewayProcess {
    child: Option<Child>,
    config: PathBuf,
}

impl GatewayProcess {
    /// Writes `config` to a temp file named after `name` and starts the
    /// binary on it with at most `nofile` descriptors, stderr captured.
    pub fn spawn(name: &str, config: &serde_json::Value, nofile: u32) -> GatewayProcess {
        let path = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
        std::fs::write(&path, config.to_string()).unwrap();
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -n {nofile} && exec {} --config {}",
                env!("CARGO_BIN_EXE_api-gateway"),
                path.display()
            ))
            .env("API_GATEWAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        GatewayProcess {
            child: Some(child),
            config: path,
        }
    }

    /// The gateway's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Writes a new `config` over the file it was started on.
    pub fn rewrite(&self, config: &serde_json::Value) {
        std::fs::write(&self.config, config.to_string()).unwrap();
    }

    /// Sends it signal `sig` (`HUP`, `TERM`, ...).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, wait, assert a clean exit; returns what it logged.
    pub fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "exit status {}", out.status);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// An accept-failure episode was logged, and logged once per episode (a
/// `failed` line, then an `again` line when accepting works), not once per
/// retry.
pub fn assert_logged_once_per_episode(log: &str, failed: &str, again: &str) {
    let f = log.matches(failed).count();
    let a = log.matches(again).count();
    assert!(f >= 1 && a >= 1, "{log}");
    assert!(f <= a + 1, "one warning per episode, not per retry:\n{log}");
}
