-- Error: int -> bigint changes the storage of every row: a rewrite under ACCESS EXCLUSIVE.
ALTER TABLE orders ALTER COLUMN quantity TYPE bigint;
