//! The settings a reload cannot change in a running process, and how a
//! reload leaves them as they run.
//!
//! - `listen`, `admin`, `tls.listen` and `workers`: sockets and threads
//!   made at start (as nginx's and HAProxy's listeners are).
//! - `tls` added or removed: the HTTPS listener exists or not from start.
//! - `admin_token`: the admin server checks the token it started with.
//! - `rate_limit.store`: the Redis connection and the key hasher are per
//!   process (gateways sharing a store must agree on the hash).
//! - `limits.max_header_bytes` above what the connection buffers were
//!   sized for at start (at least 16 KiB); a smaller or equal value
//!   applies.
//!
//! A reload applies everything else and reports these by name; the new
//! snapshot keeps the running values, so what reports show is what runs.

use crate::algo::limit::global::StoreConfig;
use crate::config::Config;
use std::net::SocketAddr;

/// The restart-only settings as the config at start asked for them (a port
/// 0 stays 0 here, so reloading the same file reports no change).
#[derive(Debug, Clone, PartialEq)]
pub struct StartSettings {
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    admin_token: Option<String>,
    workers: usize,
    tls_listen: Option<SocketAddr>,
    store: StoreConfig,
    max_header_bytes: usize,
}

impl StartSettings {
    /// What `config` asks for, before any port is resolved.
    pub fn of(config: &Config) -> StartSettings {
        StartSettings {
            listen: config.listen,
            admin: config.admin,
            admin_token: config.admin_token.clone(),
            workers: config.workers,
            tls_listen: config.tls.as_ref().map(|t| t.listen),
            store: config.rate_limit.store.clone(),
            max_header_bytes: config.limits.max_header_bytes,
        }
    }

    /// The restart-only fields `next` changes, by their config names.
    pub fn changed_by(&self, next: &Config) -> Vec<&'static str> {
        let n = StartSettings::of(next);
        let mut fields = Vec::new();
        let mut check = |changed: bool, name: &'static str| {
            if changed {
                fields.push(name);
            }
        };
        check(n.listen != self.listen, "listen");
        check(n.admin != self.admin, "admin");
        check(n.admin_token != self.admin_token, "admin_token");
        check(n.workers != self.workers, "workers");
        match (self.tls_listen, n.tls_listen) {
            (Some(a), Some(b)) => check(a != b, "tls.listen"),
            (None, None) => {}
            _ => check(true, "tls"),
        }
        check(n.store != self.store, "rate_limit.store");
        check(
            n.max_header_bytes > buffer_bytes(self.max_header_bytes),
            "limits.max_header_bytes",
        );
        fields
    }
}

/// The size of the connection buffers a gateway started with a
/// `max_header_bytes` of `start` (the worker's rule).
fn buffer_bytes(start: usize) -> usize {
    start.max(crate::worker::MIN_BUFFER_BYTES)
}

/// Gives `next` the running values of every restart-only setting
/// (`running` has the resolved addresses): the TLS listener's address and
/// presence too, while `next`'s certificates and TLS options apply.
pub fn keep_running(next: &mut Config, running: &Config) {
    next.listen = running.listen;
    next.admin = running.admin;
    next.admin_token.clone_from(&running.admin_token);
    next.workers = running.workers;
    next.rate_limit.store = running.rate_limit.store.clone();
    let buffers = buffer_bytes(running.limits.max_header_bytes);
    if next.limits.max_header_bytes > buffers {
        next.limits.max_header_bytes = running.limits.max_header_bytes;
    }
    match (&running.tls, next.tls.as_mut()) {
        (Some(r), Some(n)) => n.listen = r.listen,
        // Without a listener to serve them, new certificates wait for a
        // restart; a removed `tls` keeps serving on the old ones.
        (None, Some(_)) => next.tls = None,
        (Some(r), None) => next.tls = Some(r.clone()),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_config_changes_nothing_and_each_field_is_named() {
        let start = Config::demo();
        let s = StartSettings::of(&start);
        assert!(s.changed_by(&start).is_empty());
        let mut next = start.clone();
        next.listen = "127.0.0.1:9".parse().unwrap();
        next.workers += 1;
        next.admin = None;
        next.limits.max_header_bytes *= 2;
        assert_eq!(
            s.changed_by(&next),
            vec!["listen", "admin", "workers", "limits.max_header_bytes"]
        );
    }

    #[test]
    fn keep_running_restores_every_restart_only_field() {
        let mut running = Config::demo();
        running.listen = "127.0.0.1:40001".parse().unwrap();
        let mut next = Config::demo();
        next.listen = "127.0.0.1:0".parse().unwrap();
        next.workers = running.workers + 3;
        next.limits.max_header_bytes = 99_999;
        next.limits.max_body_bytes = 7;
        keep_running(&mut next, &running);
        assert_eq!(next.listen, running.listen);
        assert_eq!(next.workers, running.workers);
        assert_eq!(
            next.limits.max_header_bytes,
            running.limits.max_header_bytes
        );
        assert_eq!(next.limits.max_body_bytes, 7, "the rest applies");
        // A head limit within the buffers made at start applies too.
        let mut smaller = Config::demo();
        smaller.limits.max_header_bytes = 8 * 1024;
        assert!(StartSettings::of(&Config::demo())
            .changed_by(&smaller)
            .is_empty());
        keep_running(&mut smaller, &running);
        assert_eq!(smaller.limits.max_header_bytes, 8 * 1024);
    }
}
