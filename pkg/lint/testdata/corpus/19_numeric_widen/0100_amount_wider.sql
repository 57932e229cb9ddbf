-- Safe on PostgreSQL 15: more precision at the same scale needs no rewrite, and the index on amount is kept.
ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12,2);
