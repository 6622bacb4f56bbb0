-- Messages to other services (review requests to scheduling), written in the same transaction
-- as the change that causes them and delivered at least once by the outbox worker.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL,
    delivered_at    TEXT,
    create_time     TEXT NOT NULL
);

CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
