ALTER TABLE orders ADD COLUMN status text;
-- Error: the ACCESS EXCLUSIVE lock of the line above is held while every row is updated.
UPDATE orders SET status = 'new';
