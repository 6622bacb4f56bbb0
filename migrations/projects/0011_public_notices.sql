-- Public notices (通报): the rule a notice rests on and the loss to government investment it
-- records, and the order the public list reads them in (newest first).
ALTER TABLE organization_notices ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE organization_notices ADD COLUMN loss_fen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX organization_notices_by_date ON organization_notices (notice_date, id);
