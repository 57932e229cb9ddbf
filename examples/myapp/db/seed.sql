-- Seed data `ps-env db reset` loads after the migrations (seed: in .poststack.yml); init
-- containers do not run on a reset. Idempotent: seeding twice leaves one row.
INSERT INTO greetings (message)
SELECT 'hello from the seed file'
WHERE NOT EXISTS (SELECT FROM greetings WHERE message = 'hello from the seed file');
