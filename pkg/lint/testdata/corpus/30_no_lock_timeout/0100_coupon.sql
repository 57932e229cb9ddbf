SET LOCAL lock_timeout = 0;
-- Warning: a brief ACCESS EXCLUSIVE, but with no lock_timeout it may queue every query on orders.
ALTER TABLE orders ADD COLUMN coupon text;
