-- Patients' opt-outs of cross-border exchange (EHDS): per patient, per
-- service (patient-summary, eprescription) and per requesting country, '*'
-- standing for every country. A row is an opt-out in force; withdrawing it
-- deletes the row (the audit trail keeps the history of accesses).
CREATE TABLE cross_border_opt_outs (
    patient_identifier TEXT   NOT NULL,
    service            TEXT   NOT NULL,
    country            TEXT   NOT NULL,
    opted_out_at_us    INTEGER NOT NULL,
    PRIMARY KEY (patient_identifier, service, country)
);
