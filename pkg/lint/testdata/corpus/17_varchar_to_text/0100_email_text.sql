-- Safe: varchar -> text is binary-coercible; the index is kept.
ALTER TABLE customers ALTER COLUMN email TYPE text;
