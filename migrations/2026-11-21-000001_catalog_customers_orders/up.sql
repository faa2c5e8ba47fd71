-- Catalog, customers and orders: the first slice of Ordo.

CREATE TABLE products (
    id                  uuid PRIMARY KEY,
    sku                 text NOT NULL,
    name                text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('service', 'good')),
    price_minor         bigint NOT NULL CHECK (price_minor >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- NULL: stock is not tracked. The CHECK is the last line of defence behind the
    -- conditional updates that reserve stock.
    stock               bigint CHECK (stock >= 0),
    low_stock_threshold bigint CHECK (low_stock_threshold >= 0),
    active              boolean NOT NULL DEFAULT true,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT products_services_have_no_stock CHECK (kind = 'good' OR stock IS NULL)
);
CREATE UNIQUE INDEX products_sku_key ON products (sku);

CREATE TABLE stock_adjustments (
    id          uuid PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    delta       bigint NOT NULL CHECK (delta <> 0),
    reason      text NOT NULL,
    stock_after bigint NOT NULL CHECK (stock_after >= 0),
    created_at  timestamptz NOT NULL
);
CREATE INDEX stock_adjustments_product_idx ON stock_adjustments (product_id, created_at);

CREATE TABLE customers (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    city       text NOT NULL,
    phone      text,
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- Addresses are unique regardless of case: Ada@Example.com is ada@example.com.
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));

CREATE TABLE orders (
    id                    uuid PRIMARY KEY,
    number                text NOT NULL,
    customer_id           uuid NOT NULL REFERENCES customers (id),
    status                text NOT NULL CHECK (status IN ('placed', 'pending_payment', 'paid', 'payment_failed', 'cancelled')),
    scheduled_at          timestamptz NOT NULL,
    total_minor           bigint NOT NULL CHECK (total_minor >= 0),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    note                  text,
    payment_status        text,
    payment_reference     text,
    fulfillment_status    text,
    fulfillment_reference text,
    fulfillment_attempts  integer NOT NULL DEFAULT 0,
    version               integer NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE UNIQUE INDEX orders_number_key ON orders (number);
-- The spacing rule looks up a customer's live orders around one instant.
CREATE INDEX orders_customer_schedule_idx ON orders (customer_id, scheduled_at) WHERE status <> 'cancelled';
-- Lists filter by customer and page newest first by id (UUID v7 is time-ordered).
CREATE INDEX orders_customer_id_idx ON orders (customer_id, id);
CREATE INDEX orders_scheduled_at_idx ON orders (scheduled_at);

CREATE TABLE order_lines (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          integer NOT NULL,
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    -- Whether the line took units from stock, so cancelling returns exactly those.
    reserves_stock   boolean NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_product_idx ON order_lines (product_id);

-- One row per day; the order's own transaction increments it, so numbers are
-- unique and a rolled-back order gives its number back.
CREATE TABLE order_number_counters (
    day        date PRIMARY KEY,
    last_value integer NOT NULL CHECK (last_value BETWEEN 1 AND 999999)
);
