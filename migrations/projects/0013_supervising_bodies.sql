-- Each supervising body acts in its own name: the body an event's actor acted for (the IT
-- office, or a supervisor's bureau from its token), and the body that made an inspection.
-- NULL before this version, when supervisors were one role.
ALTER TABLE audit_events ADD COLUMN actor_body TEXT;
ALTER TABLE inspections ADD COLUMN body TEXT;
