-- Coloring version keys are made by the database: a sequence, so that concurrent requests
-- never compute the same key (a `MAX(id) + 1` read races with every other writer).
CREATE SEQUENCE coloring_version_ids OWNED BY coloring_versions.id;
SELECT setval('coloring_version_ids', COALESCE((SELECT MAX(id) FROM coloring_versions), 0) + 1, false);
ALTER TABLE coloring_versions ALTER COLUMN id SET DEFAULT nextval('coloring_version_ids');
