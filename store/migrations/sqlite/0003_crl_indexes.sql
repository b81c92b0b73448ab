-- Covering indexes for CRL scans: every column a CRL entry needs, in serial
-- order, for one issuer or one issuer's municipality, revoked rows only. With
-- them a CRL is read straight off the index, without sorting.
CREATE INDEX certificates_crl ON certificates (ca_label, serial_hex, expiry, revoked_at, reason) WHERE status = 'revoked';
CREATE INDEX certificates_crl_partition ON certificates (ca_label, municipality, serial_hex, expiry, revoked_at, reason) WHERE status = 'revoked';
-- They lead with the same columns as these, which they replace.
DROP INDEX certificates_revoked;
DROP INDEX certificates_revoked_partition;
