//! The upstream's JSON, and the pure functions between it and the domain's types:
//! request bodies out, response bodies in, error reasons. No network here.

use anyhow::Context;
use ordo_domain::upstream::{
    UpstreamOrder, UpstreamOrderId, UpstreamOrderStatus, UpstreamPayment, UpstreamPaymentId,
    UpstreamPaymentStatus, UpstreamProduct, UpstreamProductId, UpstreamRejection, VatRate,
};
use ordo_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::decimal::{minor_to_json, parse_scaled};

/// The longest upstream reason kept in an error.
const MAX_REASON_CHARS: usize = 300;

/// Body of `POST /orders/`.
#[derive(Debug, Serialize)]
pub struct CreateOrderBody {
    /// The total as a decimal number.
    pub total: Box<RawValue>,
    /// Our order id: the upstream order's id, so a retry finds the same order.
    pub order_id: String,
    /// The basket, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basket_id: Option<String>,
}

/// Body of `PATCH /orders/{id}`.
#[derive(Debug, Serialize)]
pub struct PatchOrderBody {
    /// The new status.
    pub status: &'static str,
}

/// Body of `POST /payments/`. The payment token travels in `x-payment-token`,
/// outside the contract's body.
#[derive(Debug, Serialize)]
pub struct CreatePaymentBody {
    /// The upstream order.
    pub order_id: String,
    /// The amount as a decimal number.
    pub amount: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
struct OrderBody {
    id: String,
    amount_total: Box<RawValue>,
    #[serde(default)]
    basket_id: Option<String>,
    status: String,
}

#[derive(Debug, Deserialize)]
struct PaymentBody {
    id: String,
    amount: Box<RawValue>,
    status: String,
    order_id: String,
}

#[derive(Debug, Deserialize)]
struct ProductBody {
    id: String,
    name: String,
    vat_rate: Box<RawValue>,
    price_unit: Box<RawValue>,
}

/// `money` as the upstream's decimal number.
///
/// # Errors
/// When `money` is not in the upstream's currency.
pub fn amount(money: Money, currency: Currency) -> anyhow::Result<Box<RawValue>> {
    anyhow::ensure!(
        money.currency() == currency,
        "the upstream works in {currency}, not {}",
        money.currency()
    );
    Ok(minor_to_json(money.minor()))
}

/// The wire name of an order status.
pub fn order_status_name(status: UpstreamOrderStatus) -> &'static str {
    match status {
        UpstreamOrderStatus::Pending => "pending",
        UpstreamOrderStatus::Completed => "completed",
        UpstreamOrderStatus::Failed => "failed",
    }
}

fn money(raw: &RawValue, currency: Currency, what: &str) -> anyhow::Result<Money> {
    let minor = parse_scaled(raw.get(), 2).with_context(|| format!("reading the {what}"))?;
    Ok(Money::new(minor, currency))
}

/// An order answered by the upstream.
///
/// # Errors
/// Malformed JSON, an unknown status, or an amount that is not exact cents.
pub fn parse_order(body: &[u8], currency: Currency) -> anyhow::Result<UpstreamOrder> {
    let order: OrderBody = serde_json::from_slice(body).context("reading an upstream order")?;
    let status = match order.status.as_str() {
        "pending" => UpstreamOrderStatus::Pending,
        "completed" => UpstreamOrderStatus::Completed,
        "failed" => UpstreamOrderStatus::Failed,
        other => anyhow::bail!("unknown upstream order status {other:?}"),
    };
    Ok(UpstreamOrder {
        id: UpstreamOrderId::parse(&order.id).context("the upstream order id")?,
        total: money(&order.amount_total, currency, "order total")?,
        basket_id: order.basket_id,
        status,
    })
}

/// A payment answered by the upstream.
///
/// # Errors
/// Malformed JSON, an unknown status, or an amount that is not exact cents.
pub fn parse_payment(body: &[u8], currency: Currency) -> anyhow::Result<UpstreamPayment> {
    let payment: PaymentBody =
        serde_json::from_slice(body).context("reading an upstream payment")?;
    let status = match payment.status.as_str() {
        "completed" => UpstreamPaymentStatus::Completed,
        "refunded" => UpstreamPaymentStatus::Refunded,
        other => anyhow::bail!("unknown upstream payment status {other:?}"),
    };
    Ok(UpstreamPayment {
        id: UpstreamPaymentId::parse(&payment.id).context("the upstream payment id")?,
        order_id: UpstreamOrderId::parse(&payment.order_id).context("the payment's order id")?,
        amount: money(&payment.amount, currency, "payment amount")?,
        status,
    })
}

fn product(body: ProductBody, currency: Currency) -> anyhow::Result<UpstreamProduct> {
    let rate = parse_scaled(body.vat_rate.get(), 4)
        .ok()
        .and_then(|bp| u32::try_from(bp).ok())
        .and_then(|bp| VatRate::from_basis_points(bp).ok())
        .with_context(|| format!("the VAT rate {} of product {}", body.vat_rate, body.id))?;
    Ok(UpstreamProduct {
        id: UpstreamProductId::parse(&body.id).context("the upstream product id")?,
        name: body.name,
        vat_rate: rate,
        price: money(&body.price_unit, currency, "product price")
            .with_context(|| format!("product {}", body.id))?,
    })
}

/// One product answered by the upstream.
///
/// # Errors
/// Malformed JSON, a price that is not exact cents, a VAT rate out of range.
pub fn parse_product(body: &[u8], currency: Currency) -> anyhow::Result<UpstreamProduct> {
    product(
        serde_json::from_slice(body).context("reading an upstream product")?,
        currency,
    )
}

/// The product list answered by the upstream; one unreadable product fails it
/// all, rather than silently shrinking the catalog.
///
/// # Errors
/// As [`parse_product`].
pub fn parse_products(body: &[u8], currency: Currency) -> anyhow::Result<Vec<UpstreamProduct>> {
    let products: Vec<ProductBody> =
        serde_json::from_slice(body).context("reading the upstream product list")?;
    products.into_iter().map(|p| product(p, currency)).collect()
}

/// The upstream's reason in an error body: its errors are JSON strings; anything
/// else is kept as text, shortened.
pub fn reason(body: &[u8]) -> String {
    let text = serde_json::from_slice::<String>(body)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    if text.is_empty() {
        return "no reason given".to_owned();
    }
    text.chars().take(MAX_REASON_CHARS).collect()
}

/// A client error of the upstream, with its reason.
pub fn rejection(status: u16, body: &[u8]) -> UpstreamRejection {
    UpstreamRejection {
        status,
        reason: reason(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("a currency")
    }

    #[test]
    fn request_bodies_carry_exact_decimal_amounts() {
        let body = CreatePaymentBody {
            order_id: "o-1".into(),
            amount: amount(Money::new(1999, eur()), eur()).expect("same currency"),
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serialises"),
            r#"{"order_id":"o-1","amount":19.99}"#
        );
        let order = CreateOrderBody {
            total: amount(Money::new(5, eur()), eur()).expect("same currency"),
            order_id: "o-2".into(),
            basket_id: None,
        };
        assert_eq!(
            serde_json::to_string(&order).expect("serialises"),
            r#"{"total":0.05,"order_id":"o-2"}"#
        );
    }

    #[test]
    fn an_amount_in_another_currency_is_never_sent() {
        let dkk = Currency::parse("DKK").expect("a currency");
        assert!(amount(Money::new(100, dkk), eur()).is_err());
    }

    #[test]
    fn responses_become_domain_values_exactly() {
        let order = parse_order(
            br#"{"id":"o-1","amount_total":54.95,"basket_id":null,"user_id":"u","created_at":"x","status":"pending"}"#,
            eur(),
        )
        .expect("an order");
        assert_eq!(order.total.minor(), 5495);
        assert_eq!(order.status, UpstreamOrderStatus::Pending);
        let payment = parse_payment(
            br#"{"id":"p-1","amount":0.1,"status":"refunded","order_id":"o-1","type":"card"}"#,
            eur(),
        )
        .expect("a payment");
        assert_eq!(payment.amount.minor(), 10);
        assert_eq!(payment.status, UpstreamPaymentStatus::Refunded);
        let products = parse_products(
            br#"[{"id":"p","name":"Cookbook","vat_rate":0.12,"price_unit":199.99}]"#,
            eur(),
        )
        .expect("products");
        assert_eq!(products[0].price.minor(), 19_999);
        assert_eq!(products[0].vat_rate.basis_points(), 1200);
    }

    #[test]
    fn inexact_amounts_unknown_statuses_and_garbage_are_errors() {
        let inexact = parse_payment(
            br#"{"id":"p","amount":10.005,"status":"completed","order_id":"o"}"#,
            eur(),
        );
        assert!(format!("{:#}", inexact.expect_err("inexact")).contains("10.005"));
        assert!(parse_order(br#"{"id":"o","amount_total":1,"status":"shipped"}"#, eur()).is_err());
        assert!(parse_order(b"<html>", eur()).is_err());
        assert!(
            parse_products(
                br#"[{"id":"p","name":"n","vat_rate":1.5,"price_unit":1}]"#,
                eur()
            )
            .is_err()
        );
    }

    #[test]
    fn reasons_are_read_from_json_strings_or_text_and_shortened() {
        assert_eq!(reason(br#""card declined""#), "card declined");
        assert_eq!(reason(b"plain text"), "plain text");
        assert_eq!(reason(b""), "no reason given");
        assert_eq!(reason(&[b'x'; 1000]).len(), MAX_REASON_CHARS);
        assert_eq!(rejection(422, br#""bad""#).status, 422);
    }
}
