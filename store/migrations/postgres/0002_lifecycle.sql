-- jpkica schema, PostgreSQL dialect, version 2: proxy applications.
--
-- A proxy application (代理人申請) is opened at the counter; the inquiry
-- (照会書) is mailed to the resident, and the proxy comes back with the
-- answer (回答書) no earlier than not_before (00:00 JST of the next day).
-- Only the SHA-256 of the answer code is kept. Each certificate type of the
-- application can be issued once (proxy_application_uses).

CREATE TABLE proxy_applications (
  id               text PRIMARY KEY,
  resident_id      text NOT NULL,
  municipality     text NOT NULL,
  card_id          text NOT NULL,
  cert_types       text NOT NULL,              -- comma-separated: signature,authentication
  answer_code_hash bytea NOT NULL,
  not_before       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL,
  created_by       text NOT NULL
);
CREATE INDEX proxy_applications_resident ON proxy_applications (resident_id);

CREATE TABLE proxy_application_uses (
  application_id text NOT NULL REFERENCES proxy_applications (id),
  cert_type      text NOT NULL,
  used_at        timestamptz NOT NULL,
  used_by        text NOT NULL DEFAULT '',  -- client and idempotency key of the issuance
  PRIMARY KEY (application_id, cert_type)
);

-- Renewal notices list good certificates of a municipality by expiry.
CREATE INDEX certificates_municipality_expiry ON certificates (municipality, status, expiry);
