INSERT INTO items (name) VALUES ('seed');
