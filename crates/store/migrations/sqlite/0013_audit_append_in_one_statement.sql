-- An append to the audit trail is one INSERT (one statement, so one
-- transaction with its triggers): the row must extend the chain head exactly
-- (seq = head.seq + 1, prev_hash = head.hash), and the head follows it.
-- The appender may then build the row from the head it last wrote (kept in
-- memory) without reading it in a BEGIN IMMEDIATE transaction first; when
-- another process moved the head meanwhile, the INSERT is refused here and
-- the appender reads the head and tries again (src/audit.rs).
CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_chain_head WHERE id = 1)
  OR NEW.prev_hash IS NOT (SELECT hash FROM audit_chain_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_events must extend the chain head');
END;
CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
END;
