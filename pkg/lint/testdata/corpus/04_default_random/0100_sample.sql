-- Error: a volatile default must be computed per row: a rewrite.
ALTER TABLE orders ADD COLUMN sample float8 DEFAULT random();
