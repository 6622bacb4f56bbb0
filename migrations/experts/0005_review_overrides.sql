-- Office overrides of review decisions, logged once each.
CREATE TABLE review_overrides (
    override_name TEXT PRIMARY KEY,
    log_index     BIGINT NOT NULL
);
