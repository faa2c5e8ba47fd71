-- Checkout: idempotency keys, the checkout's own record, and the outbox.
--
-- The references to the order are checked at commit (DEFERRABLE INITIALLY
-- DEFERRED): checkout writes these rows in the order's transaction before the
-- order itself, whose statement takes the day's number counter lock and so comes
-- last (see crates/postgres/src/orders/numbering.rs).

-- A client's idempotency keys, per principal, for 24 hours.
CREATE TABLE idempotency_keys (
    owner            text NOT NULL,
    key              text NOT NULL,
    -- SHA-256 of the request's method, path and body.
    request_hash     text NOT NULL,
    -- NULL while the first request runs.
    response_status  integer,
    -- The headers to send again: names and values, pairwise.
    response_header_names  text[],
    response_header_values text[],
    response_body    bytea,
    -- The order the request created (checkout links it in its transaction).
    order_id         uuid REFERENCES orders (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- One row per checkout, keyed by its order: where it is in its state machine and
-- when reconciliation may take it up next.
CREATE TABLE checkouts (
    order_id        uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    -- A basket is deletable again only once its checkout failed (it reopened).
    basket_id       uuid NOT NULL REFERENCES baskets (id) ON DELETE CASCADE,
    state           text NOT NULL CHECK (state IN ('started', 'order_placed_upstream', 'pending_payment', 'paid', 'payment_failed')),
    payment_token   text NOT NULL,
    payment_id      text,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Reconciliation looks for unsettled checkouts that are due.
CREATE INDEX checkouts_due_idx ON checkouts (next_attempt_at)
    WHERE state NOT IN ('paid', 'payment_failed');
CREATE INDEX checkouts_basket_id_idx ON checkouts (basket_id);

-- Deliveries to the upstream, written in the transaction of the change they
-- follow from. `waiting` until its checkout settles, then `ready` (due at
-- next_attempt_at), then `delivered`, or `abandoned` when refused or out of attempts.
CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('upstream_order_status')),
    order_id        uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    -- The upstream order status to deliver, once known.
    target_status   text CHECK (target_status IN ('completed', 'failed')),
    status          text NOT NULL CHECK (status IN ('waiting', 'ready', 'delivered', 'abandoned')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    CHECK (status = 'waiting' OR target_status IS NOT NULL)
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'ready';
CREATE INDEX outbox_pending_idx ON outbox (created_at) WHERE status IN ('waiting', 'ready');
CREATE UNIQUE INDEX outbox_order_kind_key ON outbox (order_id, kind);
