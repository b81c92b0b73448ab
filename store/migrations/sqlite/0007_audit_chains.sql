-- The audit log as a set of hash chains (store/auditlog.go). SQLite has one
-- writer at a time, so it keeps one chain, 'main', with its hashes; the
-- tables match PostgreSQL's so both dialects share the code.
CREATE TABLE audit_log_chains (
  id      INTEGER PRIMARY KEY,                -- order of the whole log, for paging
  chain   TEXT NOT NULL,
  seq     INTEGER NOT NULL,
  time    TIMESTAMP NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL DEFAULT '',           -- exact bytes: the hash covers them
  prev    BLOB NOT NULL,
  hash    BLOB NOT NULL,
  UNIQUE (chain, seq)
);
INSERT INTO audit_log_chains (id, chain, seq, time, actor, action, subject, detail, prev, hash)
  SELECT seq, 'main', seq, time, actor, action, subject, detail, prev, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_chains RENAME TO audit_log;
CREATE INDEX audit_log_anchors ON audit_log (id) WHERE action IN ('audit.open', 'audit.anchor');

CREATE TABLE audit_heads (
  chain TEXT PRIMARY KEY,
  seq   INTEGER NOT NULL,
  hash  BLOB
);
INSERT INTO audit_heads (chain, seq, hash) SELECT 'main', seq, hash FROM audit_head;
DROP TABLE audit_head;
