-- The media type of a stored document's bytes: `application/fhir+json` for
-- a FHIR document Bundle, `application/pdf` for a PDF original (MyHealth@EU
-- Original Clinical Documents, issue 18), listed beside the FHIR documents
-- of its service and read as `Binary/{id}`. Documents stored before are
-- FHIR JSON.
ALTER TABLE documents ADD COLUMN content_type TEXT NOT NULL DEFAULT 'application/fhir+json';
