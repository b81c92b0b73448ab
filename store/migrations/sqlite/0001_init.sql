-- jpkica schema, SQLite dialect, version 1.
--
-- certificates and ocsp_responses keep the column names and meanings of
-- cfssl's certdb (certdb/sqlite/migrations 001 and 002), so cfssl's certdb/sql
-- accessor can read a jpkica store. jpkica's own columns follow them.
-- Timestamps are bound by the driver as UTC text ("2006-01-02 15:04:05.999999-07:00"),
-- which sorts as time and compares with CURRENT_TIMESTAMP the way cfssl expects.

CREATE TABLE issuers (
  id          TEXT PRIMARY KEY,
  cert_type   TEXT NOT NULL,
  generation  INTEGER NOT NULL,
  key_ref     TEXT NOT NULL,
  certificate BLOB NOT NULL,
  ski         BLOB NOT NULL,
  created_at  TIMESTAMP NOT NULL,
  UNIQUE (cert_type, generation)
);

CREATE TABLE ocsp_responders (
  id          TEXT PRIMARY KEY,
  issuer_id   TEXT NOT NULL REFERENCES issuers (id),
  key_ref     TEXT NOT NULL,
  certificate BLOB NOT NULL,
  not_after   TIMESTAMP NOT NULL,
  created_at  TIMESTAMP NOT NULL
);
CREATE INDEX ocsp_responders_issuer ON ocsp_responders (issuer_id);

CREATE TABLE certificates (
  -- cfssl certdb columns
  serial_number            TEXT NOT NULL,      -- decimal
  authority_key_identifier TEXT NOT NULL,      -- lower-case hex of the issuer's SKI
  ca_label                 TEXT NOT NULL,      -- issuer ID
  status                   TEXT NOT NULL CHECK (status IN ('good', 'revoked')),
  reason                   INTEGER NOT NULL DEFAULT 0,
  expiry                   TIMESTAMP NOT NULL, -- notAfter
  revoked_at               TIMESTAMP NOT NULL DEFAULT '0001-01-01 00:00:00+00:00',
  pem                      TEXT NOT NULL,
  issued_at                TIMESTAMP,
  not_before               TIMESTAMP,
  metadata                 TEXT,
  sans                     TEXT,
  common_name              TEXT,
  -- jpkica columns
  serial_hex   TEXT NOT NULL,                  -- 40 hex digits, zero-padded: sorts as the number
  cert_type    TEXT NOT NULL,
  card_id      TEXT NOT NULL DEFAULT '',
  resident_id  TEXT NOT NULL DEFAULT '',
  municipality TEXT NOT NULL DEFAULT '',
  facts_hash   BLOB,
  der          BLOB NOT NULL,
  synthetic    BOOLEAN NOT NULL DEFAULT 0,
  change_seq   INTEGER NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier)
);
CREATE UNIQUE INDEX certificates_serial_hex ON certificates (serial_hex);
CREATE INDEX certificates_card ON certificates (card_id, cert_type);
CREATE INDEX certificates_resident ON certificates (resident_id);
CREATE INDEX certificates_issuer_status_expiry ON certificates (ca_label, status, expiry);
CREATE INDEX certificates_revoked ON certificates (ca_label, serial_hex) WHERE status = 'revoked';
CREATE INDEX certificates_revoked_partition ON certificates (ca_label, municipality, serial_hex) WHERE status = 'revoked';
CREATE INDEX certificates_changes ON certificates (change_seq);

CREATE TABLE ocsp_responses (
  serial_number            TEXT NOT NULL,
  authority_key_identifier TEXT NOT NULL,
  body                     BLOB NOT NULL,      -- the DER response, as cfssl keeps it
  expiry                   TIMESTAMP,
  PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier)
);

CREATE TABLE audit_log (
  seq     INTEGER PRIMARY KEY,
  time    TIMESTAMP NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL DEFAULT '',           -- exact bytes: the hash covers them
  prev    BLOB NOT NULL,
  hash    BLOB NOT NULL
);

-- The head of the audit chain: one row, taken by every writing transaction
-- first, so appends (and change_seq) follow commit order.
CREATE TABLE audit_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  INTEGER NOT NULL,
  hash BLOB
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);

CREATE TABLE idempotency_keys (
  client_id    TEXT NOT NULL,
  key          TEXT NOT NULL,
  request_hash BLOB NOT NULL,
  serial_hex   TEXT NOT NULL,
  created_at   TIMESTAMP NOT NULL,
  PRIMARY KEY (client_id, key)
);

CREATE TABLE crl_numbers (
  issuer_id   TEXT NOT NULL,
  "partition" TEXT NOT NULL,
  number      INTEGER NOT NULL,
  updated_at  TIMESTAMP NOT NULL,
  PRIMARY KEY (issuer_id, "partition")
);
