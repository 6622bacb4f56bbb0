-- A month whose snapshot was taken, even when no project was under supervision then: without it
-- an empty month looked untaken and the worker took it again on every pass.
CREATE TABLE snapshot_months (
    month       TEXT PRIMARY KEY,
    projects    BIGINT NOT NULL,
    create_time TEXT NOT NULL
);

INSERT INTO snapshot_months (month, projects, create_time)
SELECT month, COUNT(*), MIN(create_time) FROM snapshots GROUP BY month;
