-- jpkica schema, SQLite dialect, version 6: the revocation feed.
--
-- The CRL updater's change mark is the change_seq of the last revocation
-- or hold, not of the last change of any kind: new certificates, which
-- come far more often, no longer move it. This partial index gives the
-- mark in one seek and the revocations after it without walking the
-- issuances in between.

CREATE INDEX certificates_revocations ON certificates (change_seq) WHERE status = 'revoked';
