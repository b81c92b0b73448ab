-- The administrators' console reads today's entries (counted by action and
-- municipality) and a certificate's or resident's entries by subject; both
-- by index, never by walking the log or the certificates.
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
