-- Reads of personal data and confidential material, for inspectors: who looked at what.
CREATE TABLE read_events (
    id        TEXT PRIMARY KEY,
    read_time TEXT NOT NULL,
    subject   TEXT NOT NULL,
    role      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    resource  TEXT NOT NULL
);

CREATE INDEX read_events_by_resource ON read_events (resource, id);
