-- The audit trail: one append-only, hash-chained row per cross-border access
-- or refusal (the FHIR AuditEvent bytes as the caller gave them).
-- hash = SHA-256 over the canonical layout documented in src/audit.rs.

-- The chain head: the last appended seq and hash. Appenders write it inside
-- BEGIN IMMEDIATE, so the chain has one writer at a time; verification
-- compares it with the last row to detect records cut off the end.
CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL CHECK (seq >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_events (
    seq                INTEGER PRIMARY KEY CHECK (seq >= 1),
    recorded_at_us     INTEGER NOT NULL,
    patient_identifier TEXT,
    outcome            TEXT    NOT NULL,
    content            BLOB    NOT NULL,
    prev_hash          BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash               BLOB    NOT NULL CHECK (length(hash) = 32)
);
-- The patient's access log: newest first per patient.
CREATE INDEX audit_events_patient ON audit_events (patient_identifier, seq);

-- Append-only: rows are never updated or deleted.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

-- The head only moves forward one record at a time and is never removed.
CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE ON audit_chain_head
WHEN NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only advances by one record');
END;
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only advances by one record');
END;
