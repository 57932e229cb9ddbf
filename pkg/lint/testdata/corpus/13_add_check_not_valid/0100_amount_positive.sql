-- Safe: NOT VALID: new rows are checked, old ones are not read.
ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
