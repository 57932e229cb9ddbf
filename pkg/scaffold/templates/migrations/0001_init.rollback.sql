-- Undoes 0001_init.sql (ps-migrate down).
DROP TABLE app_info;
