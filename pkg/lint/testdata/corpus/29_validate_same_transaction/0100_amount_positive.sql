ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
-- Error: validating in the same transaction reads under the ACCESS EXCLUSIVE taken above.
ALTER TABLE orders VALIDATE CONSTRAINT amount_positive;
