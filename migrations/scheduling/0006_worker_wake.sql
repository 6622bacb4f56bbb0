-- The worker wakes on due instants instead of reading every open review on every pass, so that
-- its idle cost does not grow with the number of open reviews.
--
-- wake_at: when the worker should next take the review further on its own (a draw to open, to
-- execute once witnessed, its experts to invite); NULL while nothing it could do is pending.
-- '' sorts before every stored instant: at once.
ALTER TABLE reviews ADD COLUMN wake_at TEXT;
UPDATE reviews SET wake_at = ''
WHERE state IN ('DRAWING', 'AWAITING_WITNESS', 'INVITING', 'PANEL_CONFIRMED');
CREATE INDEX reviews_wake ON reviews (wake_at);

-- The meeting reminder is a column, no longer a " [reminded]" suffix on the meeting's change
-- reason (which leaked into the API). meeting_start is the scheduled meeting's start ('' when
-- there is none), so that the reminder pass reads only the meetings about to begin.
ALTER TABLE reviews ADD COLUMN meeting_start TEXT NOT NULL DEFAULT '';
ALTER TABLE reviews ADD COLUMN meeting_reminded BIGINT NOT NULL DEFAULT 0;
UPDATE reviews SET meeting_reminded = 1 WHERE meeting LIKE '%[reminded]%';
UPDATE reviews SET meeting = replace(replace(meeting, ' [reminded]', ''), '[reminded]', '')
WHERE meeting LIKE '%[reminded]%';
-- The stored meeting is serde's JSON of a fixed field order, its start a fixed-width instant
-- (RFC 3339 with microseconds): {"start":"2026-12-01T01:30:00.000000Z",...
UPDATE reviews SET meeting_start = substr(meeting, 11, 27)
WHERE meeting LIKE '{"start":"%' AND meeting LIKE '%"state":"SCHEDULED"%';
CREATE INDEX reviews_meeting_due ON reviews (meeting_reminded, meeting_start);

-- Reminders read the pending invitations not yet reminded, not every pending one.
CREATE INDEX invitations_to_remind ON invitations (state, reminded, respond_by);
