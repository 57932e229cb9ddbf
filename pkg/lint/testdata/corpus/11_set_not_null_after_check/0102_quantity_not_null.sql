-- ... and SET NOT NULL sees the validated check and reads nothing (PostgreSQL 12+).
ALTER TABLE orders ALTER COLUMN quantity SET NOT NULL;
ALTER TABLE orders DROP CONSTRAINT quantity_not_null;
