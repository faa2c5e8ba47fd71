-- Baskets: persisted between requests, priced from the local catalog.

-- The upstream catalog's id of a product, set by the catalog sync (which upserts
-- by it); local products have none.
ALTER TABLE products ADD COLUMN external_id text;
CREATE UNIQUE INDEX products_external_id_key ON products (external_id);

CREATE TABLE baskets (
    id          uuid PRIMARY KEY,
    -- A deleted customer's basket stays, for nobody in particular.
    customer_id uuid REFERENCES customers (id) ON DELETE SET NULL,
    status      text NOT NULL CHECK (status IN ('open', 'checked_out', 'expired')),
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    expires_at  timestamptz NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- The expire-baskets job looks for open baskets whose time ran out.
CREATE INDEX baskets_open_expiry_idx ON baskets (expires_at) WHERE status = 'open';
CREATE INDEX baskets_customer_id_idx ON baskets (customer_id) WHERE customer_id IS NOT NULL;

-- The same shape as order_lines: a basket's lines become an order's lines as they are.
CREATE TABLE basket_lines (
    basket_id        uuid NOT NULL REFERENCES baskets (id) ON DELETE CASCADE,
    line_no          integer NOT NULL,
    -- No cascade: a product in a basket is deactivated, not deleted (as one in an order).
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    reserves_stock   boolean NOT NULL,
    PRIMARY KEY (basket_id, line_no),
    CONSTRAINT basket_lines_one_per_product UNIQUE (basket_id, product_id)
);
CREATE INDEX basket_lines_product_idx ON basket_lines (product_id);
