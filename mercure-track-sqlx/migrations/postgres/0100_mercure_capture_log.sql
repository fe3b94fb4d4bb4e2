-- The change log of mercure-track's capture: one row per captured change, appended by the
-- triggers that `mercure_track_sqlx::capture::ddl` generates, removed once its events are
-- delivered (the capture loop's position is what is left in this table).
CREATE TABLE IF NOT EXISTS mercure_capture_log (
    seq BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    -- 'I' insert, 'U' update, 'D' delete
    op TEXT NOT NULL,
    -- the changed trigger columns of an update, each followed by a comma
    columns TEXT NOT NULL DEFAULT '',
    -- the writing transaction: a tracked session takes its own rows at its commit
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    -- the capture loop that claimed the row, and until when (ms since the epoch)
    claimed_by TEXT,
    claimed_until BIGINT
);
CREATE INDEX IF NOT EXISTS mercure_capture_log_txid ON mercure_capture_log (txid);
