-- ePrescription / eDispensation (issue 7): prescriptions pushed at home,
-- the pharmacies that retrieved them, and the dispenses applied to them.
-- Content is stored byte-exact with its SHA-256, as for documents.
--
-- Quantities are integers in thousandths of the unit ("milli-units"):
-- 2.5 packages = 2500. The gateway converts the FHIR decimal exactly (a value
-- with more than three fraction digits is not converted); the store only adds
-- and subtracts integers, so no rounding ever happens here.

CREATE TABLE prescriptions (
    id                        TEXT    PRIMARY KEY,
    identifier_system         TEXT    NOT NULL,
    identifier_value          TEXT    NOT NULL,
    patient_identifier        TEXT    NOT NULL,
    prescriber                TEXT,
    sender                    TEXT    NOT NULL,
    status                    TEXT    NOT NULL CHECK (status IN
        ('active', 'partially-dispensed', 'completed', 'cancelled', 'not-available-abroad')),
    status_reason             TEXT,
    quantity_prescribed_milli INTEGER NOT NULL CHECK (quantity_prescribed_milli > 0),
    quantity_remaining_milli  INTEGER NOT NULL,
    unit                      TEXT    NOT NULL,
    substitution_allowed      BOOLEAN NOT NULL,
    atc_code                  TEXT,
    dose_form                 TEXT,
    received_at_us            INTEGER NOT NULL,
    sha256                    BLOB    NOT NULL CHECK (length(sha256) = 32),
    content                   BLOB    NOT NULL,
    UNIQUE (identifier_system, identifier_value),
    CHECK (quantity_remaining_milli >= 0
           AND quantity_remaining_milli <= quantity_prescribed_milli),
    -- A reason exactly for the two states set by hand.
    CHECK ((status_reason IS NOT NULL) = (status IN ('cancelled', 'not-available-abroad'))),
    -- The states derived from the quantity agree with it.
    CHECK ((status = 'completed') = (quantity_remaining_milli = 0)),
    CHECK (status <> 'active' OR quantity_remaining_milli = quantity_prescribed_milli),
    CHECK (status <> 'partially-dispensed' OR quantity_remaining_milli < quantity_prescribed_milli)
);
-- A patient's prescriptions, newest first.
CREATE INDEX prescriptions_patient_received ON prescriptions (patient_identifier, received_at_us);

-- Which pharmacy retrieved which prescription: a dispense needs one.
CREATE TABLE prescription_retrievals (
    prescription_id TEXT   NOT NULL REFERENCES prescriptions (id),
    pharmacy        TEXT   NOT NULL,
    first_at_us     INTEGER NOT NULL,
    last_at_us      INTEGER NOT NULL,
    PRIMARY KEY (prescription_id, pharmacy)
);

-- Dispenses (and refused dispenses), with the prescription's state right
-- after each was applied, so that a retry gets the first answer back.
-- Never deleted: a cancelled dispense keeps its row and gets cancelled_at_us.
-- seq: the order dispenses were applied in (each under the prescription's
-- row lock, so per prescription it is the order of application).
CREATE TABLE dispenses (
    seq                   INTEGER PRIMARY KEY,
    id                    TEXT   NOT NULL UNIQUE,
    identifier_system     TEXT   NOT NULL,
    identifier_value      TEXT   NOT NULL,
    prescription_id       TEXT   NOT NULL REFERENCES prescriptions (id),
    pharmacy              TEXT   NOT NULL,
    kind                  TEXT   NOT NULL CHECK (kind IN ('completed', 'declined')),
    quantity_milli        INTEGER NOT NULL CHECK (quantity_milli >= 0),
    remaining_after_milli INTEGER NOT NULL CHECK (remaining_after_milli >= 0),
    status_after          TEXT   NOT NULL,
    received_at_us        INTEGER NOT NULL,
    cancelled_at_us       INTEGER,
    sha256                BLOB   NOT NULL CHECK (length(sha256) = 32),
    content               BLOB   NOT NULL,
    UNIQUE (identifier_system, identifier_value),
    CHECK (kind = 'declined' OR quantity_milli > 0)
);
CREATE INDEX dispenses_prescription ON dispenses (prescription_id, seq);
