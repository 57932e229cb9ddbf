-- Error: gen_random_uuid() is volatile: a rewrite.
ALTER TABLE customers ADD COLUMN token uuid DEFAULT gen_random_uuid();
