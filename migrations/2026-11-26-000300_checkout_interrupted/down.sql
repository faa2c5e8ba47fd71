ALTER TABLE checkouts DROP COLUMN interrupted;
