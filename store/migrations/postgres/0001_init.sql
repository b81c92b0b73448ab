-- jpkica schema, PostgreSQL dialect, version 1.
--
-- certificates and ocsp_responses keep the column names and meanings of
-- cfssl's certdb (certdb/pg/migrations 001 and 002), so cfssl's certdb/sql
-- accessor can read a jpkica store. cfssl declares the string columns bytea;
-- its accessor scans them into Go strings, which text does as well, so jpkica
-- uses text (readable, comparable with the accessor's string arguments).
-- ocsp_responses.body stays bytea: it holds the DER response.

CREATE TABLE issuers (
  id          text PRIMARY KEY,
  cert_type   text NOT NULL,
  generation  integer NOT NULL,
  key_ref     text NOT NULL,
  certificate bytea NOT NULL,
  ski         bytea NOT NULL,
  created_at  timestamptz NOT NULL,
  UNIQUE (cert_type, generation)
);

CREATE TABLE ocsp_responders (
  id          text PRIMARY KEY,
  issuer_id   text NOT NULL REFERENCES issuers (id),
  key_ref     text NOT NULL,
  certificate bytea NOT NULL,
  not_after   timestamptz NOT NULL,
  created_at  timestamptz NOT NULL
);
CREATE INDEX ocsp_responders_issuer ON ocsp_responders (issuer_id);

CREATE SEQUENCE certificates_change_seq AS bigint;

CREATE TABLE certificates (
  -- cfssl certdb columns
  serial_number            text NOT NULL,        -- decimal
  authority_key_identifier text NOT NULL,        -- lower-case hex of the issuer's SKI
  ca_label                 text NOT NULL,        -- issuer ID
  status                   text NOT NULL CHECK (status IN ('good', 'revoked')),
  reason                   integer NOT NULL DEFAULT 0,
  expiry                   timestamptz NOT NULL, -- notAfter
  revoked_at               timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
  pem                      text NOT NULL,
  issued_at                timestamptz,
  not_before               timestamptz,
  metadata                 jsonb,
  sans                     jsonb,
  common_name              text,
  -- jpkica columns
  serial_hex   text COLLATE "C" NOT NULL,        -- 40 hex digits, zero-padded: sorts as the number
  cert_type    text NOT NULL,
  card_id      text NOT NULL DEFAULT '',
  resident_id  text NOT NULL DEFAULT '',
  municipality text NOT NULL DEFAULT '',
  facts_hash   bytea,
  der          bytea NOT NULL,
  synthetic    boolean NOT NULL DEFAULT false,
  change_seq   bigint NOT NULL DEFAULT nextval('certificates_change_seq'),
  PRIMARY KEY (serial_number, authority_key_identifier)
);
ALTER SEQUENCE certificates_change_seq OWNED BY certificates.change_seq;
CREATE UNIQUE INDEX certificates_serial_hex ON certificates (serial_hex);
CREATE INDEX certificates_card ON certificates (card_id, cert_type);
CREATE INDEX certificates_resident ON certificates (resident_id);
CREATE INDEX certificates_issuer_status_expiry ON certificates (ca_label, status, expiry);
CREATE INDEX certificates_revoked ON certificates (ca_label, serial_hex) WHERE status = 'revoked';
CREATE INDEX certificates_revoked_partition ON certificates (ca_label, municipality, serial_hex) WHERE status = 'revoked';
CREATE INDEX certificates_changes ON certificates (change_seq);

CREATE TABLE ocsp_responses (
  serial_number            text NOT NULL,
  authority_key_identifier text NOT NULL,
  body                     bytea NOT NULL,       -- the DER response, as cfssl keeps it
  expiry                   timestamptz,
  PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier)
);

CREATE TABLE audit_log (
  seq     bigint PRIMARY KEY,
  time    timestamptz NOT NULL,
  actor   text NOT NULL,
  action  text NOT NULL,
  subject text NOT NULL,
  detail  text NOT NULL DEFAULT '',             -- text, not jsonb: the hash covers the exact bytes
  prev    bytea NOT NULL,
  hash    bytea NOT NULL
);

-- The head of the audit chain: one row, locked FOR UPDATE by every writing
-- transaction first, so appends (and change_seq) follow commit order across nodes.
CREATE TABLE audit_head (
  id   integer PRIMARY KEY CHECK (id = 1),
  seq  bigint NOT NULL,
  hash bytea
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);

CREATE TABLE idempotency_keys (
  client_id    text NOT NULL,
  key          text NOT NULL,
  request_hash bytea NOT NULL,
  serial_hex   text NOT NULL,
  created_at   timestamptz NOT NULL,
  PRIMARY KEY (client_id, key)
);

CREATE TABLE crl_numbers (
  issuer_id   text NOT NULL,
  "partition" text NOT NULL,
  number      bigint NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (issuer_id, "partition")
);
