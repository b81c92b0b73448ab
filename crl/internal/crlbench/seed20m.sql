-- Scratch-database generator used for docs/benchmarks-crl.md: run with sqlite3 on a COPY of
-- a dev-seeded store (it drops indexes and writes 20M synthetic revoked rows). Never on a real store.
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-400000;
DROP INDEX certificates_card;
DROP INDEX certificates_resident;
DROP INDEX certificates_issuer_status_expiry;
DROP INDEX certificates_municipality_expiry;
DROP INDEX certificates_crl_partition;
DROP INDEX certificates_crl;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 20000000)
INSERT INTO certificates (serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at, pem,
  issued_at, not_before, metadata, sans, common_name, serial_hex, cert_type, card_id, resident_id, municipality,
  facts_hash, der, synthetic, change_seq)
SELECT printf('bench-%09d', i), 'a3856d245baf264bc35d28a4fb4633a0c3ea85b3', 'signature-g1', 'revoked',
  CASE i % 6 WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 3 WHEN 3 THEN 4 WHEN 4 THEN 5 ELSE 6 END,
  printf('20%02d-%02d-%02d 01:40:06+00:00', 28 + i % 4, 1 + i % 12, 1 + i % 28),
  printf('2026-%02d-%02d %02d:%02d:%02d+00:00', 1 + i % 10, 1 + i % 28, i % 24, i % 60, (i * 7) % 60),
  'SYNTHETIC (crl benchmark)', NULL, NULL, '{"synthetic":true}', '[]', NULL,
  '00000000f' || printf('%031x', i), 'signature', 'BENCH-' || i, 'BENCH-R' || i, printf('99%04d', 1 + i % 50),
  NULL, x'00', 1, 1000000 + i
FROM s;
CREATE INDEX certificates_crl ON certificates (ca_label, serial_hex, expiry, revoked_at, reason) WHERE status = 'revoked';
