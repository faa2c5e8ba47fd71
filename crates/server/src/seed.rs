//! The sample catalog, customers and orders of `ordo seed` and of a first start.

use chrono::{Duration, Timelike, Utc};
use ordo_domain::catalog::{NewProduct, Product, ProductKind, ProductName, Sku, StockLevel};
use ordo_domain::customers::{City, CustomerId, CustomerName, Email, NewCustomer, Phone};
use ordo_domain::orders::{OrderItem, OrderItems, OrderNote, PlaceOrder, Quantity};
use ordo_domain::{Money, PageLimit, PageRequest};

use crate::state::AppState;

/// What seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    /// The sample data was loaded.
    Loaded {
        /// Products created.
        products: usize,
        /// Customers created.
        customers: usize,
        /// Orders placed.
        orders: usize,
    },
    /// The catalog already had products, so nothing was touched.
    AlreadyPopulated,
}

/// (sku, name, kind, price in minor units, stock, low-stock threshold).
type SampleProduct = (
    &'static str,
    &'static str,
    ProductKind,
    i64,
    Option<i64>,
    Option<i64>,
);

/// (customer index, day offset, lines as (product index, quantity), note).
type SampleOrder = (usize, usize, &'static [(usize, i64)], Option<&'static str>);

/// The three services are those of the original order-management brief.
const PRODUCTS: &[SampleProduct] = &[
    (
        "SVC-INSPECTION",
        "Inspection",
        ProductKind::Service,
        10_000,
        None,
        None,
    ),
    (
        "SVC-TESTING",
        "Testing",
        ProductKind::Service,
        15_000,
        None,
        None,
    ),
    (
        "SVC-ANALYSIS",
        "Analysis",
        ProductKind::Service,
        25_000,
        None,
        None,
    ),
    (
        "GD-GLOVES",
        "Safety gloves (pair)",
        ProductKind::Good,
        450,
        Some(200),
        Some(20),
    ),
    (
        "GD-TESTKIT",
        "Water test kit",
        ProductKind::Good,
        3_900,
        Some(40),
        Some(10),
    ),
    (
        "GD-CONTAINER",
        "Sample container",
        ProductKind::Good,
        120,
        Some(500),
        Some(50),
    ),
    (
        "GD-LABEL",
        "Evidence labels (roll)",
        ProductKind::Good,
        800,
        Some(8),
        Some(10),
    ),
];

/// (name, email, city, phone).
const CUSTOMERS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "Nordic Foods A/S",
        "purchasing@nordicfoods.example",
        "Copenhagen",
        Some("+45 33 12 34 56"),
    ),
    (
        "Aarhus Water Works",
        "lab@aarhuswater.example",
        "Aarhus",
        None,
    ),
    (
        "Fjord Labs AS",
        "orders@fjordlabs.example",
        "Oslo",
        Some("+47 22 11 22 33"),
    ),
    (
        "PT Sinar Tekstil",
        "admin@sinartekstil.example",
        "Bandung",
        None,
    ),
    (
        "Jakarta Clean Air",
        "ops@jakartacleanair.example",
        "Jakarta",
        Some("+62 21 555 0101"),
    ),
];

/// The installation marker recording that the sample data was loaded.
const SAMPLE_DATA_MARKER: &str = "sample-data";

/// Loads the sample data on the first start of a new database: once per database,
/// recorded in the database itself, so it never comes back after the catalog was
/// emptied. `None` when it was loaded before.
///
/// # Errors
/// When storage fails; the marker is then released, so the next start tries again.
pub async fn load_once(state: &AppState) -> anyhow::Result<Option<SeedOutcome>> {
    if !ordo_postgres::installation::claim_marker(&state.pool, SAMPLE_DATA_MARKER).await? {
        return Ok(None);
    }
    match load(state).await {
        Ok(outcome) => Ok(Some(outcome)),
        Err(e) => {
            ordo_postgres::installation::release_marker(&state.pool, SAMPLE_DATA_MARKER).await?;
            Err(e)
        }
    }
}

/// Loads the sample data unless the catalog already has products (`ordo seed`).
///
/// # Errors
/// When storage fails or a rule refuses a sample (which would be a bug here).
pub async fn load(state: &AppState) -> anyhow::Result<SeedOutcome> {
    let currency = state.default_currency;
    let probe = PageRequest {
        limit: PageLimit::parse(1).map_err(|e| anyhow::anyhow!("{e}"))?,
        after: None,
    };
    if !state.catalog.list(probe).await?.items.is_empty() {
        return Ok(SeedOutcome::AlreadyPopulated);
    }
    let now = state.catalog.now();
    let mut products: Vec<Product> = Vec::new();
    for &(sku, name, kind, price, stock, threshold) in PRODUCTS {
        let product = NewProduct::new(
            Sku::parse(sku)?,
            ProductName::parse(name)?,
            kind,
            Money::price(price, currency)?,
            stock.map(StockLevel::parse).transpose()?,
            threshold.map(StockLevel::parse).transpose()?,
            now,
        )?;
        products.push(state.catalog.create(product).await?);
    }
    let mut customers = Vec::new();
    for &(name, email, city, phone) in CUSTOMERS {
        let customer = NewCustomer {
            id: CustomerId::generate(),
            name: CustomerName::parse(name)?,
            email: Email::parse(email)?,
            city: City::parse(city)?,
            phone: phone.map(Phone::parse).transpose()?,
        };
        customers.push(state.customers.create(customer).await?);
    }
    // Tomorrow at 09:00 UTC and on, each customer's orders a day apart, so the
    // spacing rule is satisfied whatever window is configured (at most 7 days).
    let tomorrow_nine = (Utc::now() + Duration::days(1))
        .with_hour(9)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .ok_or_else(|| anyhow::anyhow!("cannot compute tomorrow 09:00"))?;
    let plan: &[SampleOrder] = &[
        (
            0,
            0,
            &[(0, 1), (3, 4)],
            Some("Quarterly hygiene inspection"),
        ),
        (1, 0, &[(1, 1), (5, 20)], None),
        (2, 0, &[(2, 1)], Some("Soil samples from site B")),
        (3, 1, &[(0, 1), (4, 2)], None),
        (
            4,
            0,
            &[(1, 1), (2, 1), (6, 1)],
            Some("Air quality, three stations"),
        ),
    ];
    let mut orders = 0;
    for &(customer, day, lines, note) in plan {
        let items = lines
            .iter()
            .map(|&(product, quantity)| {
                Ok(OrderItem {
                    product_id: products[product].id(),
                    quantity: Quantity::parse(quantity)?,
                })
            })
            .collect::<Result<Vec<_>, ordo_domain::InvalidValue>>()?;
        let offset = Duration::days(i64::try_from(day * 8 + customer).unwrap_or(0));
        state
            .orders
            .place(PlaceOrder {
                customer_id: customers[customer].id(),
                scheduled_at: Some(tomorrow_nine + offset),
                items: OrderItems::new(items)?,
                note: note.map(OrderNote::parse).transpose()?,
            })
            .await?;
        orders += 1;
    }
    Ok(SeedOutcome::Loaded {
        products: products.len(),
        customers: customers.len(),
        orders,
    })
}
