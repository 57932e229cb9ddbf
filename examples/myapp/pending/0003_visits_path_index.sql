-- A pending migration, kept out of migrations/ so that `ps-env up` never applies it: `make demo`
-- (examples/demo.sh) reviews it with `ps-migrate lint --base 2` in a copy of migrations/ that
-- holds it too. It is unsafe on purpose: CREATE INDEX without CONCURRENTLY holds a lock that
-- blocks every write to visits for as long as the build reads the table (blocking-index-build).
CREATE INDEX visits_path_idx ON visits (path);
