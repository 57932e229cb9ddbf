-- poststack:no-transaction
CREATE INDEX CONCURRENTLY orders_note ON orders (note);
-- Warning: this one could run in a transaction; if it fails, the index above stays.
ALTER TABLE orders ADD COLUMN coupon text;
