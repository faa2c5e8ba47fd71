//! Data for the scenarios, created through Ordo's own services so that it obeys
//! every rule (numbers, spacing, stock).

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use ordo_domain::catalog::{NewProduct, Product, ProductKind, ProductName, Sku, StockLevel};
use ordo_domain::customers::{City, CustomerId, CustomerName, Email, NewCustomer};
use ordo_domain::orders::{OrderItem, OrderItems, PlaceOrder, Quantity};
use ordo_domain::{Currency, Money};
use ordo_server::Services;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// How much data to create.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Customers.
    pub customers: usize,
    /// Orders, spread over the customers.
    pub orders: usize,
}

/// What the scenarios pick from.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Every customer id.
    pub customers: Vec<Uuid>,
    /// Products that can be ordered (services and goods with ample stock).
    pub products: Vec<Uuid>,
    /// Every seeded order id.
    pub orders: Vec<Uuid>,
}

const CITIES: [&str; 6] = [
    "Copenhagen",
    "Aarhus",
    "Oslo",
    "Bergen",
    "Jakarta",
    "Bandung",
];
const PARALLELISM: usize = 8;

/// The first instant the seeded orders are scheduled at; scenario orders use later
/// slots, so nothing collides with the spacing rule.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// Creates the data set.
///
/// # Errors
/// When a service refuses (a bug in this seeding) or storage fails.
pub async fn create(services: &Services, scale: Scale) -> anyhow::Result<Dataset> {
    let eur = Currency::parse("EUR").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut products: Vec<Product> = Vec::new();
    for i in 0..40 {
        let (kind, stock) = if i % 2 == 0 {
            (ProductKind::Service, None)
        } else {
            (
                ProductKind::Good,
                Some(StockLevel::parse(1_000_000_000_000)?),
            )
        };
        let product = NewProduct::new(
            Sku::parse(&format!("BENCH-{i:03}"))?,
            ProductName::parse(&format!("Bench product {i}"))?,
            kind,
            Money::price(100 + i64::from(i) * 10, eur)?,
            stock,
            None,
            services.catalog.now(),
        )?;
        products.push(services.catalog.create(product).await?);
    }
    let customers: Vec<Uuid> = stream::iter(0..scale.customers)
        .map(|i| async move {
            let customer = services
                .customers
                .create(NewCustomer {
                    id: CustomerId::generate(),
                    name: CustomerName::parse(&format!("Customer {i}"))?,
                    email: Email::parse(&format!("customer{i}@bench.example"))?,
                    city: City::parse(CITIES[i % CITIES.len()])?,
                    phone: None,
                })
                .await?;
            anyhow::Ok(customer.id().as_uuid())
        })
        .buffer_unordered(PARALLELISM)
        .try_collect()
        .await?;
    let product_ids: Vec<Uuid> = products.iter().map(|p| p.id().as_uuid()).collect();
    let orders: Vec<Uuid> = stream::iter(0..scale.orders)
        .map(|i| {
            let customer = customers[i % customers.len()];
            let round = i / customers.len();
            let mut rng = StdRng::seed_from_u64(i as u64);
            let items = pick_items(&mut rng, &product_ids);
            async move {
                let order = services
                    .orders
                    .place(PlaceOrder {
                        customer_id: CustomerId::from_uuid(customer),
                        scheduled_at: Some(epoch() + Duration::hours(4 * i64::try_from(round)?)),
                        items,
                        note: None,
                    })
                    .await?;
                anyhow::Ok(order.id.as_uuid())
            }
        })
        .buffer_unordered(PARALLELISM)
        .try_collect()
        .await?;
    Ok(Dataset {
        customers,
        products: product_ids,
        orders,
    })
}

/// One to three distinct products, one to five units each.
pub fn pick_items(rng: &mut StdRng, products: &[Uuid]) -> OrderItems {
    let lines = rng.random_range(1..=3);
    let mut items: Vec<OrderItem> = Vec::with_capacity(lines);
    while items.len() < lines {
        let product = products[rng.random_range(0..products.len())];
        if items.iter().all(|i| i.product_id.as_uuid() != product) {
            items.push(OrderItem {
                product_id: product.into(),
                quantity: Quantity::parse(rng.random_range(1..=5))
                    .expect("1 to 5 is a valid quantity"),
            });
        }
    }
    OrderItems::new(items).expect("1 to 3 distinct products are valid items")
}
