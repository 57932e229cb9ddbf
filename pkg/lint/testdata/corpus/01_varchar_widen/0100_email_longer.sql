-- Safe: varchar(20) -> varchar(30) is binary-coercible; the index is kept, nothing is read.
ALTER TABLE customers ALTER COLUMN email TYPE varchar(30);
