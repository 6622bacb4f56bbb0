-- Office decisions over a review's: asked by one office user, approved by another where the
-- deployment requires it, then applied with the project's transition.
CREATE TABLE review_overrides (
    id           TEXT PRIMARY KEY,
    project_code TEXT NOT NULL REFERENCES projects (code),
    stage        TEXT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    review_id    TEXT,
    state        TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    approved_by  TEXT,
    create_time  TEXT NOT NULL,
    apply_time   TEXT,
    -- Salts the reason's hash in the registry's log, so the log does not let anyone confirm a
    -- guessed reason; those who may read the reason here may check the hash.
    reason_salt  TEXT NOT NULL
);

CREATE INDEX review_overrides_by_project ON review_overrides (project_code, create_time);
