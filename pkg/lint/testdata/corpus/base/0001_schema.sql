-- The tables every corpus case starts from; the review puts a few rows in each.
CREATE TABLE customers (
	id bigserial PRIMARY KEY,
	email varchar(20) NOT NULL,
	name text
);
CREATE INDEX customers_email ON customers (email);

CREATE TABLE orders (
	id int PRIMARY KEY,
	customer_id bigint,
	amount numeric(10,2),
	note varchar(20),
	quantity int,
	placed timestamp
);
CREATE INDEX orders_amount ON orders (amount);

CREATE TABLE audit (id int, what text);
