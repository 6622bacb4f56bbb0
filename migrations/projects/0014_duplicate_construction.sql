-- Avoiding duplicate construction: what a project builds and buys as its application states
-- it, the projects most like it when it was submitted (JSON), and office's finding (JSON).
ALTER TABLE projects ADD COLUMN construction_content TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN equipment_selection TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN similar_projects TEXT NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN duplication_finding TEXT;
