-- The document's type (its Composition's `type`, `system|code`), by which
-- the gateway knows the cross-border service a stored document belongs to
-- (the service registry, issue 18). Documents stored before are patient
-- summaries and keep NULL.
ALTER TABLE documents ADD COLUMN document_type TEXT;
