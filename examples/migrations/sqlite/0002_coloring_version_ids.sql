-- Coloring version keys are made by the database. SQLite has no sequences: this one-row counter
-- is one. `UPDATE ... RETURNING` increments it and reads the new key in one statement, which
-- also takes the write lock first, so that two requests never get the same key (a
-- `MAX(id) + 1` read races with every other writer).
CREATE TABLE coloring_version_ids (
    last BIGINT NOT NULL
);
INSERT INTO coloring_version_ids (last) SELECT COALESCE(MAX(id), 0) FROM coloring_versions;
