-- The applying organisation of the reviewed project: applicants see only their own reviews.
ALTER TABLE reviews ADD COLUMN applicant TEXT NOT NULL DEFAULT '';
