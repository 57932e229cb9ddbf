-- Safe: now() is stable, evaluated once; PostgreSQL 11+ stores it as the missing value.
ALTER TABLE orders ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
