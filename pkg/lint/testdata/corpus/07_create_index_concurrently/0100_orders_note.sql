-- poststack:no-transaction
-- Safe: CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which blocks no writes.
CREATE INDEX CONCURRENTLY orders_note ON orders (note);
