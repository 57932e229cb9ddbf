-- Error: text -> varchar(10) must check (and cut) every value: a rewrite.
ALTER TABLE customers ALTER COLUMN name TYPE varchar(10);
