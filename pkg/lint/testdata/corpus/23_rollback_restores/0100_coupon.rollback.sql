-- Safe: undoes exactly what the migration does.
DROP TABLE promotions;
ALTER TABLE orders DROP COLUMN coupon;
