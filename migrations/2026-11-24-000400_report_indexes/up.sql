-- Indexes of the reports (ordo-postgres `reports.rs`).

-- Reports read sales: orders that count as a sale (placed or paid; see
-- OrderStatus::counts_as_sale) scheduled within a period. This partial index holds
-- only those, by scheduled_at, with every column a report takes from an order, so
-- a period is one range of an index-only scan. Its predicate is written exactly as
-- the reports' WHERE clause writes it, so the planner can prove it applies.
CREATE INDEX orders_sales_idx ON orders (scheduled_at)
    INCLUDE (id, customer_id, total_minor, currency)
    WHERE status IN ('placed', 'paid');

-- The lines of those orders with what reports add up, read without the table.
-- (The primary key (order_id, line_no) finds the same lines, but cannot carry
-- the other columns.)
CREATE INDEX order_lines_report_idx ON order_lines (order_id)
    INCLUDE (product_id, quantity, unit_price_minor, reserves_stock);

-- Orders awaiting payment, whose units the stock report shows as reserved: a
-- handful at any time among millions of orders.
CREATE INDEX orders_pending_payment_idx ON orders (id) WHERE status = 'pending_payment';
