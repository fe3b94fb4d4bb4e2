-- The transactional outbox of mercure-track (SQLite). Copy into your migrations, or call
-- mercure_track_sqlx::outbox::create_table.
CREATE TABLE IF NOT EXISTS mercure_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    topics TEXT NOT NULL,
    data TEXT NOT NULL,
    private BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    dead_at BIGINT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS mercure_outbox_pending ON mercure_outbox (seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
