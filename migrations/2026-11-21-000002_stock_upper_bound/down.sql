ALTER TABLE products DROP CONSTRAINT products_stock_at_most_max;
