-- Error: validating the new foreign key reads both tables under SHARE ROW EXCLUSIVE.
ALTER TABLE orders ADD CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id);
