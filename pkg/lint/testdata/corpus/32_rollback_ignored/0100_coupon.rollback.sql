-- poststack:lint-ignore rollback-does-not-restore promotions holds data we keep; dropped by hand
ALTER TABLE orders DROP COLUMN coupon;
