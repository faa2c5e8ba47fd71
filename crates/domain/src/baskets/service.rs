use std::sync::Arc;

use super::{
    Basket, BasketEdit, BasketId, BasketRepository, BasketTtl, ChangeBasketError,
    CreateBasketError, DeleteBasketError, LineChange,
};
use crate::catalog::{ProductId, ProductRepository};
use crate::clock::Clock;
use crate::customers::{CustomerId, CustomerRepository};
use crate::ids::IdSource;
use crate::money::Currency;
use crate::orders::Quantity;
use crate::value::VersionMatch;

/// The knobs of the basket rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasketPolicy {
    /// How long a basket lives after its last change.
    pub ttl: BasketTtl,
    /// The currency of an empty basket.
    pub currency: Currency,
}

/// The baskets' use cases.
#[derive(Clone)]
pub struct BasketService {
    baskets: Arc<dyn BasketRepository>,
    products: Arc<dyn ProductRepository>,
    customers: Arc<dyn CustomerRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: BasketPolicy,
}

impl std::fmt::Debug for BasketService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasketService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl BasketService {
    /// A service over the given ports.
    pub fn new(
        baskets: Arc<dyn BasketRepository>,
        products: Arc<dyn ProductRepository>,
        customers: Arc<dyn CustomerRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: BasketPolicy,
    ) -> Self {
        Self {
            baskets,
            products,
            customers,
            clock,
            ids,
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> BasketPolicy {
        self.policy
    }

    /// Opens an empty basket, for a customer or (until checkout names one) for
    /// nobody yet.
    ///
    /// # Errors
    /// `CustomerNotFound`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create(
        &self,
        customer_id: Option<CustomerId>,
    ) -> Result<Basket, CreateBasketError> {
        if let Some(customer) = customer_id
            && self.customers.find(customer).await?.is_none()
        {
            return Err(CreateBasketError::CustomerNotFound(customer));
        }
        let basket = Basket::open(
            BasketId::from_uuid(self.ids.new_id()),
            customer_id,
            self.policy.currency,
            self.clock.now(),
            self.policy.ttl,
        );
        self.baskets.insert(basket.clone()).await?;
        Ok(basket)
    }

    /// One basket as it stands now (`expired` once its time ran out), or `None`.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id))]
    pub async fn get(&self, id: BasketId) -> anyhow::Result<Option<Basket>> {
        let basket = self.baskets.find(id).await?;
        Ok(basket.map(|b| b.as_of(self.clock.now())))
    }

    /// Sets the quantity of a product's line, priced from the catalog now;
    /// `None` removes the line. With `if_match`, only while the basket is at one
    /// of those versions; without, concurrent changes are applied one after another.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch` (only with `if_match`), `NotOpen`, `Full`,
    /// `Pricing` (`UnknownProduct`, `InactiveProduct`, `MixedCurrencies`,
    /// `AmountTooLarge`).
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id, product_id = %product_id))]
    pub async fn set_item(
        &self,
        id: BasketId,
        product_id: ProductId,
        quantity: Option<Quantity>,
        if_match: Option<VersionMatch>,
    ) -> Result<Basket, ChangeBasketError> {
        let change = match quantity {
            Some(quantity) => LineChange::Set {
                product_id,
                quantity,
                product: self.products.find(product_id).await?,
            },
            None => LineChange::Remove(product_id),
        };
        self.edit(id, change, if_match).await
    }

    /// Removes a product's line; a basket without one is returned unchanged.
    ///
    /// # Errors
    /// `NotFound`, `NotOpen`.
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id, product_id = %product_id))]
    pub async fn remove_item(
        &self,
        id: BasketId,
        product_id: ProductId,
    ) -> Result<Basket, ChangeBasketError> {
        self.edit(id, LineChange::Remove(product_id), None).await
    }

    /// Deletes a basket that no order was made of.
    ///
    /// # Errors
    /// `NotFound`, `NotDeletable`.
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id))]
    pub async fn delete(&self, id: BasketId) -> Result<(), DeleteBasketError> {
        self.baskets.delete(id).await
    }

    /// Marks expired the open baskets whose time ran out; the `expire-baskets`
    /// job. Returns how many.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn expire_due(&self) -> anyhow::Result<u64> {
        self.baskets.expire_due(self.clock.now()).await
    }

    async fn edit(
        &self,
        id: BasketId,
        change: LineChange,
        if_match: Option<VersionMatch>,
    ) -> Result<Basket, ChangeBasketError> {
        let edit = BasketEdit {
            change,
            at: self.clock.now(),
            ttl: self.policy.ttl,
        };
        self.baskets.edit(id, edit, if_match).await
    }
}

#[cfg(test)]
mod tests;
