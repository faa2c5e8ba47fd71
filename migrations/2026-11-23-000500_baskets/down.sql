DROP TABLE basket_lines;
DROP TABLE baskets;
DROP INDEX products_external_id_key;
ALTER TABLE products DROP COLUMN external_id;
