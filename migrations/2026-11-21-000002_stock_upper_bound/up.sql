-- Stock is bounded to 10¹² units on every path (orders' conditional updates and
-- adjustments both check it); this CHECK is the last line of defence behind them,
-- as `stock >= 0` is for the lower bound. NOT VALID: existing rows are not
-- re-checked (a release could take one above the bound before), new writes are.
ALTER TABLE products
    ADD CONSTRAINT products_stock_at_most_max CHECK (stock <= 1000000000000) NOT VALID;
