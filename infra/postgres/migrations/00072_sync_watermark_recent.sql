-- The records a sync appended within the overlap before each watermark
-- (event id → updated_at), so that the next run, which asks from the
-- watermark less the overlap, passes over them instead of appending them
-- again. Rows from before have none: their next run appends the overlap
-- once more.

-- +goose Up
ALTER TABLE sync_watermarks ADD COLUMN recent jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE sync_watermarks DROP COLUMN recent;
