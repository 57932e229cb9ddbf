ALTER TABLE orders ADD COLUMN coupon text;
CREATE TABLE promotions (code text PRIMARY KEY);
