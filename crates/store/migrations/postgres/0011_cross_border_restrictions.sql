-- Parts of their data patients restricted from cross-border exchange (EHDS):
-- a section of the patient summary (kind 'section', target 'system|code'),
-- one entry of it (kind 'entry', target a fullUrl or 'Type/id'; kind
-- 'identifier', target the resource's business identifier 'system|value'),
-- or one prescription (kind 'prescription', target its identifier
-- 'system|value'). A row is a restriction in force; lifting it deletes it.
CREATE TABLE cross_border_restrictions (
    patient_identifier TEXT   NOT NULL,
    kind               TEXT   NOT NULL,
    target             TEXT   NOT NULL,
    restricted_at_us   BIGINT NOT NULL,
    PRIMARY KEY (patient_identifier, kind, target)
);

-- The variants of stored documents released abroad without the restricted
-- parts: new documents with their own id and Bundle.identifier, one per
-- original and set of restrictions in force (restrictions_sha256), each with
-- the Provenance that links it to the original. The original is untouched.
CREATE TABLE released_documents (
    id                  TEXT   PRIMARY KEY,
    original_id         TEXT   NOT NULL REFERENCES documents (id),
    restrictions_sha256 BYTEA  NOT NULL,
    identifier_system   TEXT   NOT NULL,
    identifier_value    TEXT   NOT NULL,
    released_at_us      BIGINT NOT NULL,
    sha256              BYTEA  NOT NULL,
    content             BYTEA  NOT NULL,
    provenance          BYTEA  NOT NULL,
    UNIQUE (original_id, restrictions_sha256)
);
