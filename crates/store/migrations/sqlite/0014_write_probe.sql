-- One row the health check (`Store::write_probe`, `GET /healthz`) rewrites
-- in a transaction: a store that answers reads but cannot be written
-- (locked by another process, disk full) is then seen as unhealthy
-- (issue 16 #6). It holds no patient data, only when it was last written.
CREATE TABLE write_probe (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    written_at_us    BIGINT  NOT NULL
);
INSERT INTO write_probe (id, written_at_us) VALUES (1, 0);
