-- Reviews an expert served and the office's rating of each; replacement idempotency keys.

CREATE TABLE expert_reviews (
    expert_id   TEXT NOT NULL REFERENCES experts (id),
    review_id   TEXT NOT NULL,
    rating      BIGINT NOT NULL,
    comment     TEXT NOT NULL,
    create_time TEXT NOT NULL,
    PRIMARY KEY (expert_id, review_id)
);

ALTER TABLE draw_replacements ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX draw_replacements_by_request ON draw_replacements (request_id);

ALTER TABLE experts ADD COLUMN rating_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE experts ADD COLUMN rating_sum BIGINT NOT NULL DEFAULT 0;
