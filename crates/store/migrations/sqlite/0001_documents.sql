-- Received documents (FHIR document Bundles), stored byte-exact.
CREATE TABLE documents (
    id                 TEXT    PRIMARY KEY,
    identifier_system  TEXT    NOT NULL,
    identifier_value   TEXT    NOT NULL,
    bundle_type        TEXT    NOT NULL,
    patient_identifier TEXT,
    received_at_us     INTEGER NOT NULL,
    sender             TEXT    NOT NULL,
    sha256             BLOB    NOT NULL,
    content            BLOB    NOT NULL,
    UNIQUE (identifier_system, identifier_value)
);
CREATE INDEX documents_patient ON documents (patient_identifier);
