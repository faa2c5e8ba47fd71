use chrono::{TimeZone, Utc};

use super::*;
use crate::orders::pricing_fixtures::product;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("currency")
}

fn empty_basket() -> Basket {
    Basket::open(
        BasketId::generate(),
        None,
        eur(),
        noon(),
        BasketTtl::default(),
    )
}

fn set(product: &Product, quantity: i64, minutes_later: i64) -> BasketEdit {
    BasketEdit {
        change: LineChange::Set {
            product_id: product.id(),
            quantity: Quantity::parse(quantity).expect("quantity"),
            product: Some(product.clone()),
        },
        at: noon() + TimeDelta::minutes(minutes_later),
        ttl: BasketTtl::default(),
    }
}

fn remove(product: &Product) -> BasketEdit {
    BasketEdit {
        change: LineChange::Remove(product.id()),
        at: noon(),
        ttl: BasketTtl::default(),
    }
}

fn edited(basket: &Basket, edit: &BasketEdit) -> Basket {
    basket
        .edited(edit)
        .expect("the edit is allowed")
        .expect("the edit changes the basket")
}

#[test]
fn a_new_basket_is_open_empty_and_lives_for_its_ttl() {
    let basket = empty_basket();
    assert_eq!(basket.status(), BasketStatus::Open);
    assert_eq!(basket.total(), Money::zero(eur()));
    assert_eq!(basket.expires_at(), noon() + TimeDelta::hours(24));
    assert_eq!(basket.version(), Version::FIRST);
    assert!(basket.order_items().is_none());
}

#[test]
fn lines_are_priced_from_the_catalog_and_summed_exactly() {
    let coffee = product(250, "EUR", None, true);
    let beans = product(1_299, "EUR", Some(5), true);
    let basket = edited(&empty_basket(), &set(&coffee, 3, 0));
    let basket = edited(&basket, &set(&beans, 2, 0));

    assert_eq!(basket.total().minor(), 3 * 250 + 2 * 1_299);
    assert_eq!(basket.lines()[0].line_total().minor(), 750);
    assert_eq!(basket.lines()[1].unit_price().minor(), 1_299);
    assert!(basket.lines()[1].reserves_stock());
    assert_eq!(basket.version().get(), 3);
}

#[test]
fn setting_a_line_again_replaces_it_in_place_at_todays_price() {
    let coffee = product(250, "EUR", None, true);
    let tea = product(100, "EUR", None, true);
    let basket = edited(&empty_basket(), &set(&coffee, 3, 0));
    let basket = edited(&basket, &set(&tea, 1, 0));
    let dearer = Product::restore(
        coffee.id(),
        coffee.sku().clone(),
        coffee.name().clone(),
        coffee.kind(),
        Money::new(300, eur()),
        None,
        None,
        true,
        Version::FIRST.next(),
        noon(),
        noon(),
    );

    let basket = edited(&basket, &set(&dearer, 1, 0));

    assert_eq!(basket.lines().len(), 2);
    assert_eq!(basket.lines()[0].product_id(), coffee.id());
    assert_eq!(basket.lines()[0].line_total().minor(), 300);
    assert_eq!(basket.total().minor(), 400);
}

#[test]
fn every_change_extends_the_basket_from_the_time_of_the_change() {
    let coffee = product(250, "EUR", None, true);
    let basket = edited(&empty_basket(), &set(&coffee, 1, 90));
    assert_eq!(
        basket.expires_at(),
        noon() + TimeDelta::minutes(90) + TimeDelta::hours(24)
    );
    assert_eq!(basket.updated_at(), noon() + TimeDelta::minutes(90));
}

#[test]
fn removing_a_line_takes_it_out_of_the_total_and_removing_none_changes_nothing() {
    let coffee = product(250, "EUR", None, true);
    let tea = product(100, "EUR", None, true);
    let basket = edited(&empty_basket(), &set(&coffee, 2, 0));
    let basket = edited(&basket, &set(&tea, 1, 0));

    let without_coffee = edited(&basket, &remove(&coffee));
    let again = without_coffee.edited(&remove(&coffee)).expect("allowed");

    assert_eq!(without_coffee.total().minor(), 100);
    assert_eq!(without_coffee.lines().len(), 1);
    assert_eq!(without_coffee.version().get(), 4);
    assert_eq!(again, None);
}

#[test]
fn an_unknown_or_inactive_product_cannot_be_put_in_a_basket() {
    let gone = product(250, "EUR", None, true);
    let unknown = BasketEdit {
        change: LineChange::Set {
            product_id: gone.id(),
            quantity: Quantity::parse(1).expect("quantity"),
            product: None,
        },
        at: noon(),
        ttl: BasketTtl::default(),
    };
    let inactive = product(250, "EUR", None, false);

    assert!(matches!(
        empty_basket().edited(&unknown),
        Err(ChangeBasketError::Pricing(PricingError::UnknownProduct(id))) if id == gone.id()
    ));
    assert!(matches!(
        empty_basket().edited(&set(&inactive, 1, 0)),
        Err(ChangeBasketError::Pricing(PricingError::InactiveProduct(id))) if id == inactive.id()
    ));
}

#[test]
fn the_first_line_decides_the_currency_and_others_must_share_it() {
    let krone = product(1_000, "DKK", None, true);
    let euro = product(250, "EUR", None, true);
    let basket = edited(&empty_basket(), &set(&krone, 1, 0));

    assert_eq!(basket.total().currency().as_str(), "DKK");
    assert!(matches!(
        basket.edited(&set(&euro, 1, 0)),
        Err(ChangeBasketError::Pricing(PricingError::MixedCurrencies))
    ));
    // The only line may change its currency: nothing else would be mixed.
    let emptied = edited(&basket, &remove(&krone));
    assert_eq!(edited(&emptied, &set(&euro, 1, 0)).total().minor(), 250);
}

#[test]
fn a_total_that_does_not_fit_is_refused() {
    let dear = product(i64::MAX / 2, "EUR", None, true);
    let also_dear = product(i64::MAX / 2, "EUR", None, true);
    let basket = edited(&empty_basket(), &set(&dear, 1, 0));
    assert!(matches!(
        basket.edited(&set(&also_dear, 2, 0)),
        Err(ChangeBasketError::Pricing(PricingError::AmountTooLarge))
    ));
}

#[test]
fn a_basket_holds_at_most_as_many_lines_as_an_order() {
    let mut basket = empty_basket();
    for _ in 0..Basket::MAX_LINES {
        basket = edited(&basket, &set(&product(1, "EUR", None, true), 1, 0));
    }
    let first = basket.lines()[0].product_id();

    let one_more = basket.edited(&set(&product(1, "EUR", None, true), 1, 0));

    assert!(matches!(
        one_more,
        Err(ChangeBasketError::Full { max: 100, .. })
    ));
    assert_eq!(basket.order_items().map(|i| i.as_slice().len()), Some(100));
    assert_eq!(
        basket.order_items().map(|i| i.as_slice()[0].product_id),
        Some(first)
    );
}

#[test]
fn an_expired_basket_refuses_changes_before_any_job_marked_it() {
    let coffee = product(250, "EUR", None, true);
    let basket = empty_basket();
    let at_expiry = set(&coffee, 1, 24 * 60);

    assert_eq!(basket.status_at(at_expiry.at), BasketStatus::Expired);
    assert_eq!(
        basket.clone().as_of(at_expiry.at).status(),
        BasketStatus::Expired
    );
    assert!(matches!(
        basket.edited(&at_expiry),
        Err(ChangeBasketError::NotOpen {
            status: BasketStatus::Expired,
            ..
        })
    ));
    assert!(basket.edited(&set(&coffee, 1, 24 * 60 - 1)).is_ok());
}

#[test]
fn a_checked_out_basket_refuses_changes_and_deletion() {
    let coffee = product(250, "EUR", None, true);
    let open = edited(&empty_basket(), &set(&coffee, 1, 0));
    let checked_out = Basket::restore(
        open.id(),
        None,
        BasketStatus::CheckedOut,
        open.lines().to_vec(),
        open.total(),
        open.expires_at(),
        open.created_at(),
        open.updated_at(),
        open.version(),
    );

    assert!(matches!(
        checked_out.edited(&remove(&coffee)),
        Err(ChangeBasketError::NotOpen {
            status: BasketStatus::CheckedOut,
            ..
        })
    ));
    assert!(matches!(
        checked_out.check_deletable(),
        Err(DeleteBasketError::NotDeletable { .. })
    ));
    assert!(open.check_deletable().is_ok());
}

#[test]
fn quantities_are_zero_to_a_million_and_zero_means_remove() {
    assert_eq!(parse_basket_quantity(0), Ok(None));
    assert_eq!(
        parse_basket_quantity(1_000_000).map(|q| q.map(Quantity::get)),
        Ok(Some(1_000_000))
    );
    assert!(parse_basket_quantity(-1).is_err());
    assert!(parse_basket_quantity(1_000_001).is_err());
}

#[test]
fn time_to_live_is_a_minute_to_thirty_days() {
    assert!(BasketTtl::from_secs(59).is_err());
    assert!(BasketTtl::from_secs(30 * 24 * 3600 + 1).is_err());
    assert_eq!(
        BasketTtl::from_secs(BasketTtl::DEFAULT_SECS).map(BasketTtl::get),
        Ok(TimeDelta::hours(24))
    );
}

#[test]
fn checking_out_keeps_the_lines_and_reopening_gives_the_basket_a_new_life() {
    let beans = product(1_299, "EUR", Some(40), true);
    let basket = edited(&empty_basket(), &set(&beans, 2, 0));

    let checked_out = basket
        .checked_out(noon())
        .expect("an open basket checks out");
    let reopened = checked_out
        .reopened(noon() + TimeDelta::hours(30), BasketTtl::default())
        .expect("a checked-out basket reopens");

    assert_eq!(checked_out.status(), BasketStatus::CheckedOut);
    assert_eq!(checked_out.lines(), basket.lines());
    assert_eq!(checked_out.version(), basket.version().next());
    assert_eq!(reopened.status(), BasketStatus::Open);
    assert_eq!(reopened.expires_at(), noon() + TimeDelta::hours(54));
    assert_eq!(reopened.version(), checked_out.version().next());
    assert_eq!(
        checked_out.checked_out(noon()),
        Err(BasketStatus::CheckedOut)
    );
    assert!(basket.reopened(noon(), BasketTtl::default()).is_none());
}

#[test]
fn an_expired_basket_does_not_check_out() {
    let basket = empty_basket();
    assert_eq!(
        basket.checked_out(noon() + TimeDelta::hours(24)),
        Err(BasketStatus::Expired)
    );
}
