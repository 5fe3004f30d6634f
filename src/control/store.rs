//! The rate-limit store in the reports: the `store` object of the health
//! report's `rateLimiter`, and the `ratelimit_store_*` Prometheus series.
//!
//! Rendering only: the numbers come from [`GlobalStore::status`], so the
//! store itself (in `algo`) never formats a report.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::algo::limit::global::{GlobalStore, StoreState};

/// The `store` object of the health report's `rateLimiter`.
pub fn store_json(store: Option<&Arc<GlobalStore>>) -> Value {
    let Some(store) = store else {
        return json!({"kind": "local", "state": "up", "up": true});
    };
    let cfg = store.config();
    let s = store.status();
    json!({
        "kind": "redis",
        "url": s.url,
        "state": s.state.as_str(),
        "up": s.state == StoreState::Up,
        "global": s.global,
        "gateways": s.gateways,
        "sync_ms": cfg.sync_ms,
        "key_prefix": cfg.key_prefix,
        "fail": cfg.fail.as_str(),
        "syncs": s.syncs,
        "sync_errors": s.sync_errors,
        "last_sync_us": s.last_sync_us,
        "last_error": s.last_error,
    })
}

/// Appends the store's Prometheus series to `o`.
pub fn prometheus(o: &mut String, store: Option<&Arc<GlobalStore>>) {
    let (kind, up, nodes, errors) = match store {
        None => ("local", true, 1, 0),
        Some(s) => {
            let st = s.status();
            (
                "redis",
                st.state == StoreState::Up,
                st.gateways,
                st.sync_errors,
            )
        }
    };
    let _ = writeln!(
        o,
        "# HELP ratelimit_store_up Whether the rate-limit store answers (0: limits are local or fail-closed).\n\
         # TYPE ratelimit_store_up gauge\nratelimit_store_up{{kind=\"{kind}\"}} {}",
        u8::from(up)
    );
    let _ = writeln!(
        o,
        "# HELP ratelimit_store_gateways Gateways sharing the global rate limit.\n\
         # TYPE ratelimit_store_gateways gauge\nratelimit_store_gateways {nodes}"
    );
    let _ = writeln!(
        o,
        "# HELP ratelimit_store_sync_errors_total Failed syncs with the rate-limit store.\n\
         # TYPE ratelimit_store_sync_errors_total counter\nratelimit_store_sync_errors_total {errors}"
    );
}
