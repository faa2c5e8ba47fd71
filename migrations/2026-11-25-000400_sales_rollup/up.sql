-- The daily sales rollup that the sales reports read instead of order lines
-- (ordo-postgres `reports.rs` and `sales_rollup.rs`).
--
-- A day is a UTC calendar day of orders' scheduled_at (what the reports group
-- and filter by). `sales_daily_city` and `sales_daily` hold the sales (orders
-- with status IN ('placed', 'paid')) of *clean* days only; a day listed in
-- `sales_dirty_days` changed since it was rolled up, and the reports compute it
-- from the orders themselves, so they are exact however stale the rollup is.
--
-- Exactness under concurrency: every transaction that changes a sale of day D
-- holds a shared transaction-level advisory lock on D (class 20261125, key: days
-- since 2000-01-01) and marks D dirty. The rebuild of D takes that lock
-- exclusively, so it waits for every such writer to commit and then sees their
-- rows; writers that come later wait for the rebuild and mark D dirty again.
-- Shared locks do not conflict with each other, so writers never queue behind
-- one another here (no hot row), and a writer marking an already dirty day only
-- meets a committed row (ON CONFLICT DO NOTHING, nothing written).

CREATE TABLE sales_dirty_days (
    day date PRIMARY KEY
);

-- Units and revenue per day, currency, customer city and product. The city is
-- the key the reports compare cities by (trimmed, lower-cased by Unicode rules:
-- the ICU root collation), so every spelling of a city is one row.
CREATE TABLE sales_daily_city (
    day           date NOT NULL,
    currency      text NOT NULL,
    city_key      text NOT NULL,
    product_id    uuid NOT NULL,
    units         bigint NOT NULL,
    revenue_minor bigint NOT NULL,
    PRIMARY KEY (day, currency, city_key, product_id)
);

-- The same per day, currency and product (every city): what the stock and
-- monthly reports read, far fewer rows.
CREATE TABLE sales_daily (
    day           date NOT NULL,
    currency      text NOT NULL,
    product_id    uuid NOT NULL,
    units         bigint NOT NULL,
    revenue_minor bigint NOT NULL,
    PRIMARY KEY (day, currency, product_id)
);

-- Marks `days` dirty under their shared locks (in day order).
CREATE FUNCTION sales_mark_dirty(days date[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(days) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(20261125, d.day - DATE '2000-01-01')
    FROM (SELECT DISTINCT day FROM unnest(days) AS u(day) ORDER BY day) d;
    INSERT INTO sales_dirty_days (day)
    SELECT DISTINCT day FROM unnest(days) AS u(day) ORDER BY day
    ON CONFLICT DO NOTHING;
END
$$;

-- Orders: the days of the sales a statement added, removed or changed in what
-- the reports read (status, scheduled_at, currency, customer); both the old and
-- the new day when a revision moves an order.
CREATE FUNCTION orders_mark_sales_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (n.scheduled_at AT TIME ZONE 'UTC')::date FROM new_rows n
            WHERE n.status IN ('placed', 'paid')));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date FROM old_rows o
            WHERE o.status IN ('placed', 'paid')));
    ELSE
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (d.scheduled_at AT TIME ZONE 'UTC')::date
            FROM old_rows o
            JOIN new_rows n ON n.id = o.id
            CROSS JOIN LATERAL (VALUES (o.status, o.scheduled_at), (n.status, n.scheduled_at))
                AS d(status, scheduled_at)
            WHERE d.status IN ('placed', 'paid')
              AND (o.status, o.scheduled_at, o.currency, o.customer_id)
                  IS DISTINCT FROM (n.status, n.scheduled_at, n.currency, n.customer_id)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_sales_inserted AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orders_mark_sales_dirty();
CREATE TRIGGER orders_sales_updated AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orders_mark_sales_dirty();
CREATE TRIGGER orders_sales_deleted AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orders_mark_sales_dirty();

-- Order lines: the days of the sales whose lines a statement changed (lines
-- deleted with their order are marked by the order's own trigger).
CREATE FUNCTION order_lines_mark_sales_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date FROM orders o
            WHERE o.id IN (SELECT order_id FROM new_rows) AND o.status IN ('placed', 'paid')));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date FROM orders o
            WHERE o.id IN (SELECT order_id FROM old_rows) AND o.status IN ('placed', 'paid')));
    ELSE
        PERFORM sales_mark_dirty(ARRAY(
            SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date FROM orders o
            WHERE o.id IN (SELECT order_id FROM old_rows UNION SELECT order_id FROM new_rows)
              AND o.status IN ('placed', 'paid')));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER order_lines_sales_inserted AFTER INSERT ON order_lines
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_lines_mark_sales_dirty();
CREATE TRIGGER order_lines_sales_updated AFTER UPDATE ON order_lines
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_lines_mark_sales_dirty();
CREATE TRIGGER order_lines_sales_deleted AFTER DELETE ON order_lines
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_lines_mark_sales_dirty();

-- A customer who moves takes every sale of theirs to the new city.
CREATE FUNCTION customers_mark_sales_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sales_mark_dirty(ARRAY(
        SELECT DISTINCT (o.scheduled_at AT TIME ZONE 'UTC')::date FROM orders o
        WHERE o.customer_id = NEW.id AND o.status IN ('placed', 'paid')));
    RETURN NULL;
END
$$;

CREATE TRIGGER customers_city_changed AFTER UPDATE OF city ON customers
    FOR EACH ROW WHEN (OLD.city IS DISTINCT FROM NEW.city)
    EXECUTE FUNCTION customers_mark_sales_dirty();

-- Rolls day `d` up from the orders, in the caller's transaction: waits for the
-- writers of `d` (see above), takes `d` off the dirty list, then recomputes it
-- (each statement of a function sees what committed before it started).
CREATE FUNCTION sales_roll_up_day(d date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(20261125, d - DATE '2000-01-01');
    DELETE FROM sales_dirty_days WHERE day = d;
    DELETE FROM sales_daily_city WHERE day = d;
    DELETE FROM sales_daily WHERE day = d;
    -- Added up per city as stored first, so that the case folding (far dearer)
    -- is done once per spelling, not once per line.
    INSERT INTO sales_daily_city (day, currency, city_key, product_id, units, revenue_minor)
    SELECT d, s.currency, lower(btrim(s.city) COLLATE "und-x-icu"), s.product_id,
           sum(s.units), sum(s.revenue_minor)
    FROM (
        SELECT o.currency, c.city, l.product_id,
               sum(l.quantity) AS units, sum(l.quantity::bigint * l.unit_price_minor) AS revenue_minor
        FROM orders o
        JOIN customers c ON c.id = o.customer_id
        JOIN order_lines l ON l.order_id = o.id
        WHERE o.status IN ('placed', 'paid')
          AND o.scheduled_at >= d::timestamp AT TIME ZONE 'UTC'
          AND o.scheduled_at < (d + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY o.currency, c.city, l.product_id
    ) s
    GROUP BY s.currency, lower(btrim(s.city) COLLATE "und-x-icu"), s.product_id;
    INSERT INTO sales_daily (day, currency, product_id, units, revenue_minor)
    SELECT day, currency, product_id, sum(units), sum(revenue_minor)
    FROM sales_daily_city
    WHERE day = d
    GROUP BY day, currency, product_id;
END
$$;

-- The sales already stored were never rolled up.
INSERT INTO sales_dirty_days (day)
SELECT DISTINCT (scheduled_at AT TIME ZONE 'UTC')::date FROM orders
WHERE status IN ('placed', 'paid');
