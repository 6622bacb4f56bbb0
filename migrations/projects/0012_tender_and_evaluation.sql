-- The tender as the notice describes it: the method and why, the design firm, the announcement
-- date and the standards the contract binds (JSON). NULL for a tender recorded before this
-- version, which recorded only the contractor, the supervision firm, the amount and the date.
ALTER TABLE projects ADD COLUMN tender_record TEXT;
-- The feasibility study's indicators (JSON list), measured again at post-evaluation.
ALTER TABLE projects ADD COLUMN promised_indicators TEXT NOT NULL DEFAULT '[]';
-- The acceptance report and participating units (JSON).
ALTER TABLE projects ADD COLUMN acceptance_record TEXT;
-- When the system went into operation, and the first day a post-evaluation may be recorded,
-- fixed with the stable period in force then. NULL for a project put in operation before this
-- version: its post-evaluation is not held back.
ALTER TABLE projects ADD COLUMN operation_start_date TEXT;
ALTER TABLE projects ADD COLUMN post_evaluation_from TEXT;
-- A post-evaluation cites the latest post-evaluation panel of its project.
CREATE INDEX review_outcomes_by_project ON review_outcomes (project_code, stage, recorded_at);
