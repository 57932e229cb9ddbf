-- Error: a validated CHECK reads every row under ACCESS EXCLUSIVE.
ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0);
