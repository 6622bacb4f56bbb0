-- Review scheduling: calendar, reviews, draws, invitations, meetings, opinions, conclusions,
-- notifications and the outbox. Same dialect rules as the other services.

CREATE TABLE calendar_years (
    year        BIGINT PRIMARY KEY,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    source      TEXT NOT NULL,
    update_time TEXT NOT NULL
);

-- Only the days that differ from the Monday-to-Friday week.
CREATE TABLE calendar_days (
    day  TEXT PRIMARY KEY,
    year BIGINT NOT NULL REFERENCES calendar_years (year),
    kind TEXT NOT NULL,
    name TEXT NOT NULL
);

CREATE TABLE reviews (
    id                     TEXT PRIMARY KEY,
    request_key            TEXT NOT NULL UNIQUE,
    project_id             TEXT NOT NULL,
    stage                  TEXT NOT NULL,
    state                  TEXT NOT NULL,
    panel                  TEXT NOT NULL,
    excluded_organizations TEXT NOT NULL,
    request_date           TEXT NOT NULL,
    deadline               TEXT NOT NULL,
    calendar_version       TEXT NOT NULL,
    chair_expert_id        TEXT,
    meeting                TEXT,
    conclusion             TEXT,
    stall_reason           TEXT NOT NULL,
    version                BIGINT NOT NULL,
    event_count            BIGINT NOT NULL,
    create_time            TEXT NOT NULL
);

CREATE INDEX reviews_by_project ON reviews (project_id, create_time, id);

CREATE TABLE review_events (
    review_id TEXT NOT NULL REFERENCES reviews (id),
    seq       BIGINT NOT NULL,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    PRIMARY KEY (review_id, seq)
);

CREATE TABLE review_draws (
    review_id TEXT NOT NULL REFERENCES reviews (id),
    draw_id   TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    -- Empty for the main draw; the category of a supplementary draw.
    category  TEXT NOT NULL,
    invited   BIGINT NOT NULL,
    PRIMARY KEY (review_id, seq)
);

CREATE TABLE invitations (
    review_id      TEXT NOT NULL REFERENCES reviews (id),
    expert_id      TEXT NOT NULL,
    category       TEXT NOT NULL,
    draw_id        TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    state          TEXT NOT NULL,
    respond_by     TEXT NOT NULL,
    decline_reason TEXT NOT NULL,
    reminded       BIGINT NOT NULL,
    PRIMARY KEY (review_id, expert_id)
);

CREATE INDEX invitations_pending ON invitations (state, respond_by);

-- One row per expert a meeting occupies: what double-booking is checked against.
CREATE TABLE bookings (
    expert_id  TEXT NOT NULL,
    review_id  TEXT NOT NULL REFERENCES reviews (id),
    start_time TEXT NOT NULL,
    end_time   TEXT NOT NULL,
    PRIMARY KEY (expert_id, review_id)
);

-- A row per expert whose calendar is being changed: taking its lock serialises bookings of
-- that expert across replicas.
CREATE TABLE expert_locks (
    expert_id TEXT PRIMARY KEY,
    touched   TEXT NOT NULL
);

CREATE TABLE opinions (
    review_id      TEXT NOT NULL REFERENCES reviews (id),
    expert_id      TEXT NOT NULL,
    scores         TEXT NOT NULL,
    opinion        TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    submit_time    TEXT NOT NULL,
    PRIMARY KEY (review_id, expert_id)
);

CREATE TABLE ratings (
    review_id TEXT NOT NULL REFERENCES reviews (id),
    expert_id TEXT NOT NULL,
    rating    BIGINT NOT NULL,
    comment   TEXT NOT NULL,
    PRIMARY KEY (review_id, expert_id)
);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    recipient   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    text        TEXT NOT NULL,
    status      TEXT NOT NULL,
    review_id   TEXT NOT NULL,
    create_time TEXT NOT NULL
);

CREATE INDEX notifications_pending ON notifications (status, seq);

CREATE TABLE notification_counter (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);

INSERT INTO notification_counter (id, last) VALUES (1, 0);

-- Messages to other services, written with the change that causes them and delivered at
-- least once by the worker.
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
