-- The typed contract with review scheduling: the project's review by name, and an outbox that
-- keeps messages about one subject in order and parks what its receiver refuses for good.
ALTER TABLE projects ADD COLUMN review TEXT;

ALTER TABLE outbox ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN parked_at TEXT;
ALTER TABLE outbox ADD COLUMN last_code TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN last_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_by_subject ON outbox (subject, delivered_at, create_time);

-- A decision that arrived for a project that had moved on (withdrawn, say) is kept, not lost.
ALTER TABLE review_outcomes ADD COLUMN applied BIGINT NOT NULL DEFAULT 1;

-- A claimed message's lease, apart from when it is next due, so that making messages due now
-- never hands one being delivered to a second worker.
ALTER TABLE outbox ADD COLUMN leased_until TEXT;
