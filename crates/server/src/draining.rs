//! An instance that is shutting down says so on `/readyz` before it stops
//! accepting connections: a load balancer checking readiness takes it out while it
//! still serves, so no client meets a refused connection or a cut-off request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this instance has begun to shut down. Shared by the stop handle, which
/// sets it, and `/readyz`, which reads it.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the instance as shutting down, for good.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the instance is shutting down.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
