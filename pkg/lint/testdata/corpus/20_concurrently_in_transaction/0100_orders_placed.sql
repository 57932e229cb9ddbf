-- Error: CONCURRENTLY cannot run in a transaction, and this file is not marked no-transaction.
CREATE INDEX CONCURRENTLY orders_placed ON orders (placed);
