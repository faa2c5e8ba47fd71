DROP TABLE order_number_counters;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE stock_adjustments;
DROP TABLE products;
