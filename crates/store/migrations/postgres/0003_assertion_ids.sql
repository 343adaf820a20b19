-- Replay ledger: every accepted health-professional assertion (iss, jti) is
-- remembered until it could no longer be accepted anyway (RFC 7519 §4.1.7).
CREATE TABLE assertion_ids (
    issuer        TEXT   NOT NULL,
    jti           TEXT   NOT NULL,
    expires_at_us BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
-- Purging expired entries walks this index.
CREATE INDEX assertion_ids_expires ON assertion_ids (expires_at_us);
