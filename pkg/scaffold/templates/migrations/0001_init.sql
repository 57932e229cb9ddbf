-- The first migration (ps-env init wrote it). ps-env up and ps-migrate up apply the files of
-- migrations/ in version order, each in a transaction; 0001_init.rollback.sql undoes it
-- (ps-migrate down). Replace this example with the project's schema, and add files with
-- ps-migrate new NAME.
CREATE TABLE app_info (
    key        text        PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO app_info (key, value) VALUES ('schema', 'initialised by 0001_init.sql');
