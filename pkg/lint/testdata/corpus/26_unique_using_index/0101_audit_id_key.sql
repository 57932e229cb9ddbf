-- ... and the constraint adopts it: no build, no scan.
ALTER TABLE audit ADD CONSTRAINT audit_id_key UNIQUE USING INDEX audit_id;
