-- The audit trail: one append-only, hash-chained row per cross-border access
-- or refusal (the FHIR AuditEvent bytes as the caller gave them).
-- hash = SHA-256 over the canonical layout documented in src/audit.rs.

-- The chain head: the last appended seq and hash. Appenders lock this one row
-- (SELECT ... FOR UPDATE) so that the chain has one writer at a time across
-- every gateway replica sharing the schema; verification compares it with
-- the last row to detect records cut off the end.
CREATE TABLE audit_chain_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT   NOT NULL CHECK (seq >= 0),
    hash BYTEA    NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

CREATE TABLE audit_events (
    seq                BIGINT PRIMARY KEY CHECK (seq >= 1),
    recorded_at_us     BIGINT NOT NULL,
    patient_identifier TEXT,
    outcome            TEXT   NOT NULL,
    content            BYTEA  NOT NULL,
    prev_hash          BYTEA  NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash               BYTEA  NOT NULL CHECK (octet_length(hash) = 32)
);
-- The patient's access log: newest first per patient.
CREATE INDEX audit_events_patient ON audit_events (patient_identifier, seq);

-- Append-only: rows are never updated or deleted (nor the table truncated).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The head only moves forward one record at a time and is never removed.
CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1 THEN
        RAISE EXCEPTION 'audit_chain_head only advances by one record: % refused', TG_OP;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_head_forward_only
    BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
CREATE TRIGGER audit_chain_head_no_truncate
    BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
