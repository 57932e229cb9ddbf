-- Error: forgets the promotions table.
ALTER TABLE orders DROP COLUMN coupon;
