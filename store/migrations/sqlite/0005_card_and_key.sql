-- jpkica schema, SQLite dialect, version 5: a card is one resident's, a key one card's.
--
-- card_expires is the card's expiry day as the issuance gave it
-- (YYYY-MM-DD): a card ID in use keeps its expiry. key_hash is the SHA-256
-- of the certified key's SubjectPublicKeyInfo (ca.KeyHash): a key certified
-- for one card is refused for any other. Both are NULL on the records
-- stored before version 5, and key_hash on synthetic ones.

ALTER TABLE certificates ADD COLUMN card_expires TEXT;
ALTER TABLE certificates ADD COLUMN key_hash BLOB;
CREATE INDEX certificates_key ON certificates (key_hash) WHERE key_hash IS NOT NULL;
