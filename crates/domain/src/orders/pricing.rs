//! Turning requested items into priced lines.

use std::collections::HashMap;

use super::{OrderItems, OrderLine, PricingError};
use crate::catalog::{Product, ProductId};
use crate::money::Money;

/// Prices `items` from `products` (the catalog entries for them, in any order) and
/// sums the total. Every product must exist, be active and share one currency.
///
/// # Errors
/// `UnknownProduct`, `InactiveProduct`, `MixedCurrencies`, or `AmountTooLarge` when
/// a line or the total does not fit in 64-bit minor units.
pub fn price_lines(
    items: &OrderItems,
    products: &[Product],
) -> Result<(Vec<OrderLine>, Money), PricingError> {
    let by_id: HashMap<ProductId, &Product> = products.iter().map(|p| (p.id(), p)).collect();
    let mut lines = Vec::with_capacity(items.as_slice().len());
    let mut total: Option<Money> = None;
    for item in items.as_slice() {
        let product = by_id
            .get(&item.product_id)
            .ok_or(PricingError::UnknownProduct(item.product_id))?;
        if !product.is_active() {
            return Err(PricingError::InactiveProduct(item.product_id));
        }
        let line = OrderLine::new(
            product.id(),
            product.sku().clone(),
            product.name().clone(),
            item.quantity,
            product.price(),
            product.stock().is_some(),
        )
        .map_err(|_| PricingError::AmountTooLarge)?;
        let line_total = line.line_total();
        total = Some(match total {
            None => line_total,
            Some(sum) if sum.currency() != line_total.currency() => {
                return Err(PricingError::MixedCurrencies);
            }
            Some(sum) => sum
                .plus(line_total)
                .map_err(|_| PricingError::AmountTooLarge)?,
        });
        lines.push(line);
    }
    // OrderItems is never empty, so a total always exists.
    let total = total.ok_or(PricingError::AmountTooLarge)?;
    Ok((lines, total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{ProductKind, ProductName, Sku, StockLevel};
    use crate::money::Currency;
    use crate::orders::{OrderItem, Quantity};
    use crate::value::Version;
    use chrono::Utc;

    pub(crate) fn product(price: i64, currency: &str, stock: Option<i64>, active: bool) -> Product {
        Product::restore(
            ProductId::generate(),
            Sku::parse("SKU-1").expect("sku"),
            ProductName::parse("Widget").expect("name"),
            if stock.is_some() {
                ProductKind::Good
            } else {
                ProductKind::Service
            },
            Money::new(price, Currency::parse(currency).expect("currency")),
            stock.map(|s| StockLevel::parse(s).expect("stock")),
            None,
            active,
            Version::FIRST,
            Utc::now(),
            Utc::now(),
        )
    }

    pub(crate) fn items(of: &[(&Product, i64)]) -> OrderItems {
        OrderItems::new(
            of.iter()
                .map(|(p, q)| OrderItem {
                    product_id: p.id(),
                    quantity: Quantity::parse(*q).expect("quantity"),
                })
                .collect(),
        )
        .expect("valid items")
    }

    #[test]
    fn lines_are_priced_and_summed_in_minor_units() {
        let a = product(250, "EUR", Some(10), true);
        let b = product(1000, "EUR", None, true);
        let (lines, total) =
            price_lines(&items(&[(&a, 3), (&b, 1)]), &[b.clone(), a.clone()]).expect("priced");
        assert_eq!(total.minor(), 1750);
        assert_eq!(lines[0].line_total().minor(), 750);
        assert!(lines[0].reserves_stock());
        assert!(!lines[1].reserves_stock());
    }

    #[test]
    fn an_unknown_product_is_named() {
        let a = product(250, "EUR", None, true);
        let result = price_lines(&items(&[(&a, 1)]), &[]);
        assert!(matches!(result, Err(PricingError::UnknownProduct(id)) if id == a.id()));
    }

    #[test]
    fn an_inactive_product_cannot_be_ordered() {
        let a = product(250, "EUR", None, false);
        let result = price_lines(&items(&[(&a, 1)]), std::slice::from_ref(&a));
        assert!(matches!(result, Err(PricingError::InactiveProduct(id)) if id == a.id()));
    }

    #[test]
    fn currencies_cannot_be_mixed() {
        let a = product(250, "EUR", None, true);
        let b = product(250, "DKK", None, true);
        let result = price_lines(&items(&[(&a, 1), (&b, 1)]), &[a.clone(), b.clone()]);
        assert!(matches!(result, Err(PricingError::MixedCurrencies)));
    }

    #[test]
    fn totals_that_overflow_are_refused() {
        let a = product(i64::MAX / 2, "EUR", None, true);
        let result = price_lines(&items(&[(&a, 3)]), std::slice::from_ref(&a));
        assert!(matches!(result, Err(PricingError::AmountTooLarge)));
    }
}
