//! What an order change means for stock: which products give units and which get
//! them back. Storage applies the moves; this module decides them.

use std::collections::BTreeMap;

use super::OrderLine;
use crate::catalog::ProductId;

/// Units each product's stock must give (positive) or get back (negative),
/// iterated in product-id order — the order in which storage locks product rows,
/// so that concurrent writers queue instead of deadlocking. Products whose lines
/// cancel out are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockMoves(BTreeMap<ProductId, i64>);

impl StockMoves {
    /// Placing an order with `lines`: each stock-tracking line takes its units.
    pub fn reserve(lines: &[OrderLine]) -> Self {
        Self::default().adding(lines, 1)
    }

    /// Cancelling or deleting an order with `lines`: every unit it reserved returns.
    pub fn release(lines: &[OrderLine]) -> Self {
        Self::default().adding(lines, -1)
    }

    /// Revising an order from `old` to `new` lines: the new reservations minus the
    /// old ones, per product, so an unchanged line moves nothing.
    pub fn revise(old: &[OrderLine], new: &[OrderLine]) -> Self {
        Self::default().adding(new, 1).adding(old, -1)
    }

    /// The non-zero moves, in product-id order.
    pub fn iter(&self) -> impl Iterator<Item = (ProductId, i64)> + '_ {
        self.0
            .iter()
            .filter(|(_, units)| **units != 0)
            .map(|(&product, &units)| (product, units))
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn adding(mut self, lines: &[OrderLine], sign: i64) -> Self {
        // A line holds at most Quantity::MAX units and an order at most
        // OrderItems::MAX_LINES lines, so these sums stay far from overflowing.
        for line in lines.iter().filter(|l| l.reserves_stock()) {
            *self.0.entry(line.product_id()).or_default() +=
                sign * i64::from(line.quantity().get());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ProductName, Sku};
    use crate::money::{Currency, Money};
    use crate::orders::Quantity;

    fn line(product: ProductId, quantity: i64, reserves_stock: bool) -> OrderLine {
        OrderLine::new(
            product,
            Sku::parse("SKU-1").expect("sku"),
            ProductName::parse("Widget").expect("name"),
            Quantity::parse(quantity).expect("quantity"),
            Money::new(100, Currency::parse("EUR").expect("currency")),
            reserves_stock,
        )
        .expect("a line total that fits")
    }

    #[test]
    fn placing_an_order_reserves_only_the_lines_that_track_stock() {
        let (good, service) = (ProductId::generate(), ProductId::generate());
        let moves = StockMoves::reserve(&[line(good, 3, true), line(service, 2, false)]);
        assert_eq!(moves.iter().collect::<Vec<_>>(), vec![(good, 3)]);
    }

    #[test]
    fn releasing_an_order_returns_every_reserved_unit() {
        let good = ProductId::generate();
        let moves = StockMoves::release(&[line(good, 4, true)]);
        assert_eq!(moves.iter().collect::<Vec<_>>(), vec![(good, -4)]);
    }

    #[test]
    fn a_revision_reserves_new_minus_old_per_product() {
        let (kept, dropped, added) = (
            ProductId::generate(),
            ProductId::generate(),
            ProductId::generate(),
        );
        let old = [line(kept, 5, true), line(dropped, 2, true)];
        let new = [line(kept, 7, true), line(added, 1, true)];
        let moves: BTreeMap<_, _> = StockMoves::revise(&old, &new).iter().collect();
        assert_eq!(
            moves,
            BTreeMap::from([(kept, 2), (dropped, -2), (added, 1)])
        );
    }

    #[test]
    fn an_unchanged_line_moves_nothing() {
        let good = ProductId::generate();
        let lines = [line(good, 5, true)];
        assert!(StockMoves::revise(&lines, &lines).is_empty());
    }

    #[test]
    fn moves_come_in_product_id_order_whatever_the_line_order() {
        let mut ids: Vec<ProductId> = (0..5).map(|_| ProductId::generate()).collect();
        let lines: Vec<OrderLine> = ids.iter().rev().map(|&id| line(id, 1, true)).collect();
        let order: Vec<ProductId> = StockMoves::reserve(&lines)
            .iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        assert_eq!(order, ids);
    }
}
