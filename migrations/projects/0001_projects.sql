-- The projects service's schema. Written in the subset of SQL that SQLite and PostgreSQL share:
-- instants are fixed-width RFC 3339 UTC text, dates are YYYY-MM-DD text, money is BIGINT fen,
-- lists are JSON text.

CREATE TABLE organizations (
    credit_code  TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    kind         TEXT NOT NULL,
    contacts     TEXT NOT NULL,
    version      BIGINT NOT NULL,
    event_count  BIGINT NOT NULL,
    create_time  TEXT NOT NULL,
    update_time  TEXT NOT NULL
);

-- The last sequence number handed out per year, for project codes such as 2026-0007.
CREATE TABLE project_code_counters (
    year     BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE projects (
    code                     TEXT PRIMARY KEY,
    year                     BIGINT NOT NULL,
    seq                      BIGINT NOT NULL,
    display_name             TEXT NOT NULL,
    applicant                TEXT NOT NULL REFERENCES organizations (credit_code),
    category                 TEXT NOT NULL,
    description              TEXT NOT NULL,
    planned_start_date       TEXT,
    planned_end_date         TEXT,
    estimated_investment_fen BIGINT NOT NULL,
    funding_source           TEXT NOT NULL,
    contacts                 TEXT NOT NULL,
    feasibility_consultancy  TEXT REFERENCES organizations (credit_code),
    state                    TEXT NOT NULL,
    suspended_from           TEXT,
    review_panel             TEXT NOT NULL,
    return_reasons           TEXT NOT NULL,
    implementation_plan      TEXT,
    contractor               TEXT REFERENCES organizations (credit_code),
    supervision_firm         TEXT REFERENCES organizations (credit_code),
    contract_amount_fen      BIGINT,
    contract_date            TEXT,
    post_evaluation_summary  TEXT NOT NULL,
    -- Bumped by every change of the project's own fields; the etag.
    version                  BIGINT NOT NULL,
    -- Bumped by every audit event of the project (documents too); the next event's sequence.
    event_count              BIGINT NOT NULL,
    create_time              TEXT NOT NULL,
    update_time              TEXT NOT NULL,
    UNIQUE (year, seq)
);

CREATE INDEX projects_by_applicant ON projects (applicant, year, seq);
CREATE INDEX projects_by_state ON projects (state, year, seq);

-- The audit trail of projects and organisations: one row per change, written in the same
-- transaction as the change. `resource` is the resource name, e.g. projects/2026-0007.
CREATE TABLE audit_events (
    resource        TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    occur_time      TEXT NOT NULL,
    actor_subject   TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    action          TEXT NOT NULL,
    from_state      TEXT,
    to_state        TEXT,
    changed_fields  TEXT NOT NULL,
    reason          TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    PRIMARY KEY (resource, seq)
);

CREATE TABLE documents (
    id            TEXT PRIMARY KEY,
    project_code  TEXT NOT NULL REFERENCES projects (code),
    kind          TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    sealed_copies BIGINT NOT NULL,
    uploaded_by   TEXT NOT NULL,
    create_time   TEXT NOT NULL
);

CREATE INDEX documents_by_project ON documents (project_code, create_time, id);

-- Review decisions already applied, so a redelivered outcome is a no-op.
CREATE TABLE review_outcomes (
    review_id    TEXT PRIMARY KEY,
    project_code TEXT NOT NULL REFERENCES projects (code),
    stage        TEXT NOT NULL,
    decision     TEXT NOT NULL,
    summary      TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
