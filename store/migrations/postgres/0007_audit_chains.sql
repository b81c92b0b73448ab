-- The audit log becomes one hash chain per writer (store/auditlog.go), so
-- that writers no longer queue on one head row. The entries written so far
-- are the chain 'main', and keep their hashes.
ALTER TABLE audit_log ADD COLUMN chain text NOT NULL DEFAULT 'main';
ALTER TABLE audit_log ALTER COLUMN chain DROP DEFAULT;
-- id orders the whole log for paging (GET /v1/audit); within a chain it
-- follows seq, since a chain's appends hold its head row.
CREATE SEQUENCE audit_log_id AS bigint;
ALTER TABLE audit_log ADD COLUMN id bigint;
UPDATE audit_log SET id = seq;
SELECT setval('audit_log_id', COALESCE((SELECT max(id) FROM audit_log), 0) + 1, false);
ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id'), ALTER COLUMN id SET NOT NULL;
ALTER SEQUENCE audit_log_id OWNED BY audit_log.id;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log ADD PRIMARY KEY (chain, seq);
CREATE UNIQUE INDEX audit_log_by_id ON audit_log (id);
-- audit verify reads the anchors first.
CREATE INDEX audit_log_anchors ON audit_log (id) WHERE action IN ('audit.open', 'audit.anchor');

-- One head per chain, locked FOR UPDATE by the transactions that append to
-- that chain only.
CREATE TABLE audit_heads (
  chain text PRIMARY KEY,
  seq   bigint NOT NULL,
  hash  bytea
);
INSERT INTO audit_heads (chain, seq, hash) SELECT 'main', seq, hash FROM audit_head WHERE seq > 0;
DROP TABLE audit_head;

-- change_seq in commit order. The audit head no longer serialises every
-- write, so the transactions that move change_seq serialise here instead:
-- each row written with a change_seq takes a transaction-scoped advisory
-- lock (held to commit) and only then draws its number, replacing whatever
-- the statement drew. A transaction that draws a number therefore commits
-- before any other can draw a greater one. Writes that move no change_seq
-- (audit entries alone, CRL numbers, OCSP responses) never take the lock.
CREATE FUNCTION certificates_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7669748265794994178); -- 0x6a706b6963610002, "jpkica" 0002
  NEW.change_seq := nextval('certificates_change_seq');
  RETURN NEW;
END
$$;
CREATE TRIGGER certificates_change_seq BEFORE INSERT OR UPDATE OF change_seq ON certificates
  FOR EACH ROW EXECUTE FUNCTION certificates_change_seq();
