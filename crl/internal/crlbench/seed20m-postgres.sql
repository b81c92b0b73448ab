-- Scratch-schema generator for the 20M-entry PostgreSQL CRL benchmark
-- (docs/benchmarks.md). Run on a schema made by `jpkica init` with psql -v
-- aki=<hex SKI of signature-g1>; it drops the secondary indexes and writes
-- 20M synthetic revoked rows. Never on a real store.
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
DROP INDEX certificates_serial_hex, certificates_card, certificates_resident, certificates_issuer_status_expiry,
  certificates_municipality_expiry, certificates_crl, certificates_crl_partition, certificates_changes;
INSERT INTO certificates (serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at, pem,
  metadata, sans, serial_hex, cert_type, card_id, resident_id, municipality, der, synthetic, change_seq)
SELECT 'bench-' || i, :'aki', 'signature-g1', 'revoked',
  (ARRAY[0,1,3,4,5,6])[1 + i % 6],
  make_timestamptz(2028 + i % 4, 1 + i % 12, 1 + i % 28, 1, 40, 6, 'UTC'),
  make_timestamptz(2026, 1 + i % 10, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, 'UTC'),
  'SYNTHETIC (crl benchmark)', '{"synthetic":true}', '[]',
  '00000000f' || lpad(to_hex(i), 31, '0'), 'signature', 'BENCH-' || i, 'BENCH-R' || i, '99' || lpad((1 + i % 50)::text, 4, '0'),
  '\x00', true, 1000000 + i
FROM generate_series(1, 20000000) AS i;
CREATE INDEX certificates_crl ON certificates (ca_label, serial_hex, expiry, revoked_at, reason) WHERE status = 'revoked';
ANALYZE certificates;
