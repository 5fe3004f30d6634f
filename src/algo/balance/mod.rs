//! Load balancers: one file per algorithm, one small trait.
//!
//! A balancer is *built* from the backend table and swapped whole on change;
//! counters that must survive a swap (in-flight counts, breaker state) live in
//! the [`BackendTable`], not in the balancer.

use std::sync::Arc;

use api_gateway_admin::BalanceSpec;

use super::BackendId;
use crate::backend::BackendTable;

/// What a balancer may key a choice on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickKey {
    /// Hash of the client's address (fixed seed, stable across restarts).
    pub client_hash: u64,
}

/// One load-balancing algorithm.
pub trait Balancer: Send + Sync {
    /// Offers backends to `accept` in this algorithm's order of preference and
    /// returns the first one it accepts; `None` if it accepts none.
    ///
    /// `accept` has side effects (it takes a circuit-breaker permit), so a
    /// balancer must return a backend as soon as `accept` says yes to it, and
    /// offer each backend at most once per call.
    fn pick(
        &self,
        key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId>;

    /// The spec this balancer was built from.
    fn spec(&self) -> &BalanceSpec;
}

/// Builds the balancer for `spec` over `table`'s backends.
pub fn build(spec: &BalanceSpec, table: &BackendTable) -> Arc<dyn Balancer> {
    let _ = table;
    Arc::new(InOrder(spec.clone()))
}

/// Placeholder until the algorithms land: first acceptable backend.
struct InOrder(BalanceSpec);

impl Balancer for InOrder {
    fn pick(
        &self,
        _key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        (0..table.len()).find(|&id| accept(id))
    }
    fn spec(&self) -> &BalanceSpec {
        &self.0
    }
}
