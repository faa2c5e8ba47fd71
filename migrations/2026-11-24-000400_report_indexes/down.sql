DROP INDEX orders_pending_payment_idx;
DROP INDEX order_lines_report_idx;
DROP INDEX orders_sales_idx;
