-- Safe: the table is new; reading orders under ACCESS SHARE blocks nothing.
CREATE TABLE refunds (id int PRIMARY KEY, order_id int NOT NULL, amount numeric(10,2));
INSERT INTO refunds SELECT id, id, amount FROM orders;
CREATE INDEX refunds_order ON refunds (order_id);
