use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Basket, BasketEdit, BasketId, ChangeBasketError, CreateBasketError, DeleteBasketError,
};
use crate::value::VersionMatch;

/// Storage of baskets.
///
/// Implementations apply the domain's own rules ([`Basket::edited`],
/// [`Basket::check_deletable`]) to the stored basket inside the same serialised
/// section that writes it, so that concurrent changes of one basket are applied one
/// after another: none is lost, and each raises the version by exactly one.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BasketRepository: Send + Sync {
    /// Stores a new basket.
    ///
    /// # Errors
    /// `CustomerNotFound` when the basket's customer does not exist (also when it
    /// is deleted concurrently).
    async fn insert(&self, basket: Basket) -> Result<(), CreateBasketError>;

    /// One basket with its lines, as stored, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, id: BasketId) -> anyhow::Result<Option<Basket>>;

    /// Applies `edit` to the stored basket with [`Basket::edited`] and stores the
    /// result, holding the basket against other changes from the read to the
    /// write; when `expected` is given, only if the basket is at one of its
    /// versions. Returns the basket as stored afterwards (unchanged when the edit
    /// changes nothing).
    ///
    /// # Errors
    /// `NotFound`; `VersionMismatch` when `expected` is not met; whatever
    /// [`Basket::edited`] refuses (`NotOpen`, `Full`, `Pricing`).
    async fn edit(
        &self,
        id: BasketId,
        edit: BasketEdit,
        expected: Option<VersionMatch>,
    ) -> Result<Basket, ChangeBasketError>;

    /// Deletes the basket and its lines if [`Basket::check_deletable`] allows it,
    /// checked against the basket held for the deletion.
    ///
    /// # Errors
    /// `NotFound`, `NotDeletable`.
    async fn delete(&self, id: BasketId) -> Result<(), DeleteBasketError>;

    /// Marks `expired` every open basket whose `expires_at` is at or before `now`
    /// (what [`Basket::as_of`] already shows), leaving its version and
    /// `updated_at` as they are: the basket reads the same before and after.
    /// A basket held by a concurrent change is left for a later call. Returns
    /// how many it marked.
    ///
    /// # Errors
    /// When storage fails.
    async fn expire_due(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;
}
