-- The log's checkpoints in the C2SP signed-note form, with the cosignatures witnesses returned;
-- the newest is what /checkpoint serves.
CREATE TABLE log_checkpoints (
    size        BIGINT PRIMARY KEY,
    note        TEXT NOT NULL,
    cosigners   BIGINT NOT NULL,
    create_time TEXT NOT NULL
);

-- The size each witness last cosigned for this log: the `old` of the next request to it.
CREATE TABLE witness_sizes (
    witness TEXT PRIMARY KEY,
    size    BIGINT NOT NULL
);
