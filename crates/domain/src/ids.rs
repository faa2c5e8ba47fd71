//! The source of new ids, a port so that services (not handlers, not adapters)
//! decide every new entity's id, and tests can predict them.

use uuid::Uuid;

/// Hands out new, unique ids.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdSource: Send + Sync {
    /// A new id, never handed out before.
    fn new_id(&self) -> Uuid;
}

/// UUID v7: time-ordered, so keyset pagination by id is creation order.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Ids;

impl IdSource for UuidV7Ids {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_7_ids_are_distinct_and_increasing() {
        let (a, b) = (UuidV7Ids.new_id(), UuidV7Ids.new_id());
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }
}
