-- Supervision: budget control, disbursements, progress, variance, inspections, notices and
-- post-evaluation. Same dialect rules as 0001.

ALTER TABLE projects ADD COLUMN approved_budget_fen BIGINT;
ALTER TABLE projects ADD COLUMN original_approved_fen BIGINT;
ALTER TABLE projects ADD COLUMN disbursed_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN post_evaluation TEXT;

-- Every approved figure the project has had; the last is current. Never updated, only added.
CREATE TABLE budget_baselines (
    project_code  TEXT NOT NULL REFERENCES projects (code),
    seq           BIGINT NOT NULL,
    budget_fen    BIGINT NOT NULL,
    source        TEXT NOT NULL,
    budget_change TEXT,
    reason        TEXT NOT NULL,
    create_time   TEXT NOT NULL,
    PRIMARY KEY (project_code, seq)
);

CREATE TABLE budget_changes (
    id                       TEXT PRIMARY KEY,
    project_code             TEXT NOT NULL REFERENCES projects (code),
    current_budget_fen       BIGINT NOT NULL,
    requested_budget_fen     BIGINT NOT NULL,
    reason                   TEXT NOT NULL,
    funding_source           TEXT NOT NULL,
    state                    TEXT NOT NULL,
    requires_higher_approval BIGINT NOT NULL,
    higher_approval          TEXT,
    decision_comment         TEXT NOT NULL,
    requested_by             TEXT NOT NULL,
    decided_by               TEXT NOT NULL,
    create_time              TEXT NOT NULL,
    decide_time              TEXT
);

CREATE INDEX budget_changes_by_project ON budget_changes (project_code, create_time);

CREATE TABLE disbursements (
    id                  TEXT PRIMARY KEY,
    project_code        TEXT NOT NULL REFERENCES projects (code),
    amount_fen          BIGINT NOT NULL,
    payment_date        TEXT NOT NULL,
    payee               TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    supporting_document TEXT NOT NULL,
    recorded_by         TEXT NOT NULL,
    create_time         TEXT NOT NULL
);

CREATE INDEX disbursements_by_project ON disbursements (project_code, payment_date);

CREATE TABLE milestones (
    id                 TEXT PRIMARY KEY,
    project_code       TEXT NOT NULL REFERENCES projects (code),
    display_name       TEXT NOT NULL,
    planned_start      TEXT NOT NULL,
    planned_end        TEXT NOT NULL,
    projected_end      TEXT NOT NULL,
    actual_start       TEXT,
    actual_end         TEXT,
    planned_cost_fen   BIGINT NOT NULL,
    projected_cost_fen BIGINT NOT NULL,
    actual_cost_fen    BIGINT,
    version            BIGINT NOT NULL,
    create_time        TEXT NOT NULL,
    update_time        TEXT NOT NULL
);

CREATE INDEX milestones_by_project ON milestones (project_code, planned_start);

CREATE TABLE progress_reports (
    id               TEXT PRIMARY KEY,
    project_code     TEXT NOT NULL REFERENCES projects (code),
    report_date      TEXT NOT NULL,
    percent_complete BIGINT NOT NULL,
    narrative        TEXT NOT NULL,
    state            TEXT NOT NULL,
    filed_by         TEXT NOT NULL,
    review_comment   TEXT NOT NULL,
    reviewed_by      TEXT NOT NULL,
    create_time      TEXT NOT NULL
);

CREATE INDEX progress_reports_by_project ON progress_reports (project_code, report_date);

CREATE TABLE risk_ratings (
    id           TEXT PRIMARY KEY,
    project_code TEXT NOT NULL REFERENCES projects (code),
    rating       TEXT NOT NULL,
    comment      TEXT NOT NULL,
    rating_date  TEXT NOT NULL,
    rated_by     TEXT NOT NULL,
    create_time  TEXT NOT NULL
);

CREATE INDEX risk_ratings_by_project ON risk_ratings (project_code, rating_date, create_time);

-- Frozen monthly figures: written once per (month, project), never updated.
CREATE TABLE snapshots (
    month        TEXT NOT NULL,
    project_code TEXT NOT NULL REFERENCES projects (code),
    figures      TEXT NOT NULL,
    create_time  TEXT NOT NULL,
    PRIMARY KEY (month, project_code)
);

CREATE TABLE inspections (
    id              TEXT PRIMARY KEY,
    project_code    TEXT NOT NULL REFERENCES projects (code),
    inspection_date TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    participants    TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    create_time     TEXT NOT NULL
);

CREATE INDEX inspections_by_project ON inspections (project_code, inspection_date);

CREATE TABLE findings (
    inspection_id          TEXT NOT NULL REFERENCES inspections (id),
    seq                    BIGINT NOT NULL,
    project_code           TEXT NOT NULL REFERENCES projects (code),
    description            TEXT NOT NULL,
    severity               TEXT NOT NULL,
    rectification_required TEXT NOT NULL,
    deadline_working_days  BIGINT NOT NULL,
    due_date               TEXT NOT NULL,
    rectified              BIGINT NOT NULL,
    rectification          TEXT NOT NULL,
    rectified_date         TEXT,
    PRIMARY KEY (inspection_id, seq)
);

CREATE INDEX findings_open ON findings (rectified, due_date);

CREATE TABLE organization_notices (
    id          TEXT PRIMARY KEY,
    credit_code TEXT NOT NULL REFERENCES organizations (credit_code),
    kind        TEXT NOT NULL,
    projects    TEXT NOT NULL,
    grounds     TEXT NOT NULL,
    handling    TEXT NOT NULL,
    notice_date TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    create_time TEXT NOT NULL
);

CREATE INDEX organization_notices_by_org ON organization_notices (credit_code, notice_date);
