-- Reviews named by their caller, bound to who asked and what they asked; cancelled and paused
-- reviews; amended panels; an outbox that keeps order per subject and parks final refusals.
ALTER TABLE reviews ADD COLUMN requester TEXT NOT NULL DEFAULT '';
ALTER TABLE reviews ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE reviews ADD COLUMN accept_time TEXT NOT NULL DEFAULT '';
ALTER TABLE reviews ADD COLUMN paused_from TEXT;
ALTER TABLE reviews ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';

-- An amended panel abandons the review's earlier draws; they stay listed, marked.
ALTER TABLE review_draws ADD COLUMN abandoned BIGINT NOT NULL DEFAULT 0;

ALTER TABLE outbox ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN parked_at TEXT;
ALTER TABLE outbox ADD COLUMN last_code TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN last_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_by_subject ON outbox (subject, delivered_at, create_time);

-- A claimed message's lease, apart from when it is next due, so that making messages due now
-- never hands one being delivered to a second worker.
ALTER TABLE outbox ADD COLUMN leased_until TEXT;
