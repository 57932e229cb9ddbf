-- poststack:no-transaction
-- Error: VACUUM FULL copies the table under ACCESS EXCLUSIVE (seen through the second connection).
VACUUM FULL orders;
