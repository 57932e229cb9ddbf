-- One row per GET / of the example app: data the app writes itself.
CREATE TABLE visits (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path       text        NOT NULL,
    visited_at timestamptz NOT NULL DEFAULT now()
);
