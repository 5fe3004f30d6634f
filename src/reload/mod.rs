//! Live configuration reload, the control-thread side: where a new config
//! comes from (the start file again, or an admin's JSON body), what a
//! reload may not change ([`restart`]), what it did change ([`diff`]), the
//! active document as `GET /gateway/config` shows it ([`document`]), and
//! the record of the last attempt for `/gateway/health` and `/metrics`.
//!
//! Applying one is the controller's job (`control::Controller::reload`):
//! parse and validate in full, read every file the config names, compile
//! a new snapshot that adopts the running state, and only then swap; any
//! error before the swap leaves the running config untouched.

pub mod diff;
pub mod document;
pub mod restart;

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::algo::clock::{unix_secs, utc_string};
use crate::config::Config;
use restart::StartSettings;

/// Where a gateway's config came from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file SIGHUP and `POST /gateway/config/reload` read again
    /// (`None`: started from a config built in code, e.g. the demo).
    pub file: Option<PathBuf>,
    /// The JSON document the config was parsed from, if there is one.
    pub doc: Option<Value>,
}

impl ConfigSource {
    /// No file: the config was built in code.
    pub fn inline() -> ConfigSource {
        ConfigSource {
            file: None,
            doc: None,
        }
    }

    /// Reads and validates `path`: the config and its source.
    pub fn file(path: impl Into<PathBuf>) -> Result<(Config, ConfigSource), String> {
        let path = path.into();
        let text = read(&path)?;
        let (config, doc) = parse(&text)?;
        Ok((
            config,
            ConfigSource {
                file: Some(path),
                doc: Some(doc),
            },
        ))
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses and validates a config text: the config, and the document as
/// sent (for `GET /gateway/config`).
pub fn parse(text: &str) -> Result<(Config, Value), String> {
    let config = Config::from_json(text).map_err(|e| e.0)?;
    // Valid JSON: `from_json` parsed it already.
    let doc = serde_json::from_str(text).unwrap_or(Value::Null);
    Ok((config, doc))
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP or `POST /gateway/config/reload`: the start file again.
    File,
    /// `POST /gateway/config`: a body, not written to disk.
    Admin,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Admin => "admin",
        }
    }
}

/// How the last reload went.
#[derive(Debug, Clone)]
struct Attempt {
    trigger: Trigger,
    at_secs: u64,
    /// `Ok(changes)` or `Err(why)`.
    result: Result<String, String>,
    not_applied: Vec<&'static str>,
}

/// The reload state the control thread keeps.
#[derive(Debug)]
pub struct Reloader {
    file: Option<PathBuf>,
    start: StartSettings,
    /// The active document, secrets included (redacted on the way out).
    doc: Value,
    last: Option<Attempt>,
    succeeded: u64,
    failed: u64,
}

impl Reloader {
    /// The state for a gateway that started on `config` from `source`
    /// (`config` before any port was resolved).
    pub fn new(source: ConfigSource, config: &Config) -> Reloader {
        Reloader {
            file: source.file,
            start: StartSettings::of(config),
            doc: source.doc.unwrap_or_else(|| document::render(config)),
            last: None,
            succeeded: 0,
            failed: 0,
        }
    }

    /// The text of the start file, read again.
    pub fn read_file(&self) -> Result<String, String> {
        match &self.file {
            Some(path) => read(path),
            None => Err("the gateway was started without a config file (the demo, or a config built in code): \
                 apply one with POST /gateway/config instead"
                .into()),
        }
    }

    /// The restart-only settings `next` would change.
    pub fn not_applied(&self, next: &Config) -> Vec<&'static str> {
        self.start.changed_by(next)
    }

    /// A reload succeeded: `doc` is the active document now.
    pub fn succeeded(
        &mut self,
        trigger: Trigger,
        mut doc: Value,
        running: &Config,
        not_applied: Vec<&'static str>,
        changes: String,
    ) {
        document::pin_running(&mut doc, running, &not_applied);
        self.doc = doc;
        self.succeeded += 1;
        self.last = Some(Attempt {
            trigger,
            at_secs: unix_secs(),
            result: Ok(changes),
            not_applied,
        });
    }

    /// A reload was refused for `why`.
    pub fn failed(&mut self, trigger: Trigger, why: String) {
        self.failed += 1;
        self.last = Some(Attempt {
            trigger,
            at_secs: unix_secs(),
            result: Err(why),
            not_applied: Vec::new(),
        });
    }

    /// Reloads so far: (succeeded, failed).
    pub fn totals(&self) -> (u64, u64) {
        (self.succeeded, self.failed)
    }

    /// The active config with its secrets redacted.
    pub fn document(&self) -> Value {
        document::redacted(&self.doc)
    }

    /// The `config` object of `/gateway/health`.
    pub fn health_json(&self, generation: u64) -> Value {
        let last = self.last.as_ref().map(|a| {
            let mut v = json!({
                "result": if a.result.is_ok() { "ok" } else { "error" },
                "trigger": a.trigger.as_str(),
                "at": utc_string(a.at_secs),
                "at_unix_ms": a.at_secs * 1000,
            });
            match &a.result {
                Ok(changes) => {
                    v["changes"] = json!(changes);
                    v["not_applied"] = json!(a.not_applied);
                }
                Err(e) => v["error"] = json!(e),
            }
            v
        });
        json!({
            "generation": generation,
            "file": self.file.as_ref().map(|p| p.display().to_string()),
            "reloads": {"ok": self.succeeded, "error": self.failed},
            "last_reload": last,
        })
    }
}
