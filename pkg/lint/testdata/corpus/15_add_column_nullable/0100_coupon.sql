-- Safe: a nullable column without a default is a catalog change.
ALTER TABLE orders ADD COLUMN coupon text;
