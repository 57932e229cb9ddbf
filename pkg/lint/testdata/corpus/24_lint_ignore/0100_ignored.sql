-- poststack:lint-ignore blocking-index-build orders gets a few writes a day; a short block is fine
CREATE INDEX orders_note ON orders (note);
ALTER TABLE orders ALTER COLUMN quantity TYPE bigint; -- poststack:lint-ignore table-rewrite run in the maintenance window
-- Not ignored: another rule's finding at a statement without a comment.
CREATE INDEX orders_placed ON orders (placed);
