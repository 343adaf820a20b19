-- A dispense may cover several prescriptions (issue 7): FHIR R4
-- MedicationDispense.authorizingPrescription is 0..*, and the HL7 Europe MPD
-- example 300D ("one dispense fulfilling two requests", a combination pack
-- filling a cream and a pessary item) names two. One line per covered
-- prescription, all applied in one transaction (all or nothing).
--
-- The prescription-specific columns move from dispenses to dispense_lines;
-- every dispense stored before this migration becomes line 0 of itself.
-- Prescriptions also keep the code system of their unit (unit_system), so
-- that a dispensed quantity is compared by system and code (the gateway's
-- unit policy, profiles/dispense-units.toml).

ALTER TABLE prescriptions ADD COLUMN unit_system TEXT;

-- line: the position of the prescription in authorizingPrescription.
-- remaining_after_milli / status_after: the prescription right after the
-- dispense was applied (a retry gets them back).
CREATE TABLE dispense_lines (
    dispense_id           TEXT   NOT NULL REFERENCES dispenses (id),
    line                  INTEGER NOT NULL CHECK (line >= 0),
    prescription_id       TEXT   NOT NULL REFERENCES prescriptions (id),
    quantity_milli        BIGINT NOT NULL CHECK (quantity_milli >= 0),
    remaining_after_milli BIGINT NOT NULL CHECK (remaining_after_milli >= 0),
    status_after          TEXT   NOT NULL,
    PRIMARY KEY (dispense_id, line),
    UNIQUE (dispense_id, prescription_id)
);

INSERT INTO dispense_lines (dispense_id, line, prescription_id, quantity_milli,
                            remaining_after_milli, status_after)
    SELECT id, 0, prescription_id, quantity_milli, remaining_after_milli, status_after
    FROM dispenses;

DROP INDEX dispenses_prescription;
ALTER TABLE dispenses
    DROP COLUMN prescription_id,
    DROP COLUMN quantity_milli,
    DROP COLUMN remaining_after_milli,
    DROP COLUMN status_after;

-- A prescription's dispenses.
CREATE INDEX dispense_lines_prescription ON dispense_lines (prescription_id);
