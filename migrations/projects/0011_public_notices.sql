-- Public notices (通报): the rule a notice rests on, the loss to government investment it
-- records, and when it was published. Notices issued before this migration were written for
-- office, the bureaus and the unit only and never checked for personal data: they stay
-- unpublished (NULL). The public list reads newest first.
ALTER TABLE organization_notices ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE organization_notices ADD COLUMN loss_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organization_notices ADD COLUMN publish_time TEXT;
CREATE INDEX organization_notices_by_date ON organization_notices (notice_date, id);
