-- jpkica schema, PostgreSQL dialect, version 4: residents the register reported gone.
--
-- A resident reported deceased or removed from the register gets no new
-- certificate: the issuance transaction looks here. A "registered" event
-- (the resident is in the register again) deletes the row.

CREATE TABLE resident_status (
  resident_id TEXT PRIMARY KEY,
  event       TEXT NOT NULL CHECK (event IN ('deceased', 'removed')),
  effective   TEXT NOT NULL,       -- YYYY-MM-DD, as the register gave it
  recorded_at timestamptz NOT NULL
);
