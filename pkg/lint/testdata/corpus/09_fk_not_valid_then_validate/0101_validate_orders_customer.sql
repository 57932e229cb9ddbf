-- Safe: VALIDATE CONSTRAINT reads the rows under SHARE UPDATE EXCLUSIVE, which blocks no writes.
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer;
