-- Pages of all projects, and of one category, in code order (year, seq) read from an index
-- instead of sorting the whole table on every page: ListProjects without a filter, or with a
-- category, scanned and sorted all rows (docs/BENCHMARKS.md, ListProjects at 100,000).
CREATE INDEX projects_by_year_seq ON projects (year, seq);
CREATE INDEX projects_by_category ON projects (category, year, seq);
