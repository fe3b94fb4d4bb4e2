-- mercure-track outbox, second step (PostgreSQL): lanes, merge groups and leases, so that
-- relays claim work in short transactions and publish with none open. Copy into your
-- migrations after 0001, or call mercure_track_sqlx::outbox::create_table.
ALTER TABLE mercure_outbox ADD COLUMN IF NOT EXISTS lane TEXT NOT NULL DEFAULT '';
ALTER TABLE mercure_outbox ADD COLUMN IF NOT EXISTS batch BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE mercure_outbox ADD COLUMN IF NOT EXISTS group_seq BIGINT;
ALTER TABLE mercure_outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE mercure_outbox ADD COLUMN IF NOT EXISTS claimed_until BIGINT;
UPDATE mercure_outbox SET lane = topics WHERE lane = '';
CREATE INDEX IF NOT EXISTS mercure_outbox_lane ON mercure_outbox (lane, seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS mercure_outbox_group ON mercure_outbox (group_seq)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
