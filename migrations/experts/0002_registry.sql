-- The expert registry: categories, experts, draws and the transparency log.
-- Same SQL dialect rules as the projects service: fixed-width RFC 3339 UTC text for instants,
-- YYYY-MM-DD text for dates, JSON text for small lists, BIGINT 0/1 for flags.

CREATE TABLE categories (
    code         TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL,
    parent       TEXT REFERENCES categories (code),
    active       BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    create_time  TEXT NOT NULL,
    update_time  TEXT NOT NULL
);

CREATE TABLE experts (
    id                     TEXT PRIMARY KEY,
    display_name           TEXT NOT NULL,
    employer_credit_code   TEXT NOT NULL,
    employer_name          TEXT NOT NULL,
    source                 TEXT NOT NULL,
    title                  TEXT NOT NULL,
    phone                  TEXT NOT NULL,
    email                  TEXT NOT NULL,
    id_number              TEXT NOT NULL,
    appointment_start      TEXT NOT NULL,
    appointment_end        TEXT NOT NULL,
    status                 TEXT NOT NULL,
    unavailable            TEXT NOT NULL,
    conflicts              TEXT NOT NULL,
    draws_count            BIGINT NOT NULL,
    reviews_count          BIGINT NOT NULL,
    version                BIGINT NOT NULL,
    create_time            TEXT NOT NULL,
    update_time            TEXT NOT NULL
);

CREATE TABLE expert_categories (
    category  TEXT NOT NULL REFERENCES categories (code),
    expert_id TEXT NOT NULL REFERENCES experts (id),
    PRIMARY KEY (category, expert_id)
);

CREATE INDEX expert_categories_by_expert ON expert_categories (expert_id);

CREATE TABLE draws (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    stage             TEXT NOT NULL,
    state             TEXT NOT NULL,
    meeting_date      TEXT NOT NULL,
    request_id        TEXT UNIQUE,
    supplements       TEXT REFERENCES draws (id),
    -- The canonical input, exactly as hashed.
    input             TEXT NOT NULL,
    input_hash        TEXT NOT NULL,
    -- Secret until execution; never returned before.
    server_secret     TEXT NOT NULL,
    witness_entropy   TEXT,
    outcome           TEXT,
    seed              TEXT,
    -- The draw-v1 result object (category -> selected, alternates) as drawn.
    result            TEXT,
    record_hash       TEXT,
    -- The panel as it stands after replacements.
    panel             TEXT,
    -- Hand exclusions with their free-text reasons (the input carries only MANUAL).
    manual_exclusions TEXT NOT NULL,
    cancel_reason     TEXT,
    open_time         TEXT NOT NULL,
    execute_time      TEXT,
    version           BIGINT NOT NULL
);

CREATE INDEX draws_by_project ON draws (project_id, open_time, id);

CREATE TABLE draw_replacements (
    draw_id        TEXT NOT NULL REFERENCES draws (id),
    seq            BIGINT NOT NULL,
    category       TEXT NOT NULL,
    left_expert    TEXT NOT NULL,
    came_in        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    replace_time   TEXT NOT NULL,
    PRIMARY KEY (draw_id, seq)
);

-- Who was drawn, for the workload rule and the experts' counts.
CREATE TABLE selections (
    draw_id      TEXT NOT NULL REFERENCES draws (id),
    expert_id    TEXT NOT NULL,
    category     TEXT NOT NULL,
    role         TEXT NOT NULL,
    execute_time TEXT NOT NULL,
    PRIMARY KEY (draw_id, expert_id)
);

CREATE INDEX selections_by_expert ON selections (expert_id, execute_time);

-- The log's size: updating this one row serialises appends across replicas.
CREATE TABLE log_state (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);

INSERT INTO log_state (id, size) VALUES (1, 0);

CREATE TABLE log_entries (
    idx         BIGINT PRIMARY KEY,
    entry       TEXT NOT NULL,
    leaf_hash   TEXT NOT NULL,
    draw_id     TEXT,
    create_time TEXT NOT NULL
);

CREATE INDEX log_entries_by_draw ON log_entries (draw_id, idx);

-- The Ed25519 key that signs tree heads, made on first start and shared by every replica.
CREATE TABLE signing_keys (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    secret_key  TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    create_time TEXT NOT NULL
);
