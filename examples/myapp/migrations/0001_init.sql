-- The first migration of the example app.
CREATE TABLE greetings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO greetings (message) VALUES ('hello from poststack');
