-- Error: SET NOT NULL reads every row under ACCESS EXCLUSIVE.
ALTER TABLE orders ALTER COLUMN quantity SET NOT NULL;
