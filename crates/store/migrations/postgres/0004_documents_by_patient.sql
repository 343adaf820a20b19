-- A patient's documents, newest first: the old single-column index is a
-- prefix of this one.
DROP INDEX documents_patient;
CREATE INDEX documents_patient_received ON documents (patient_identifier, received_at_us);
