-- Safe: DROP COLUMN only marks the column dropped; nothing is rewritten.
ALTER TABLE orders DROP COLUMN note;
