-- When the event's record was appended to the log: its record timestamp,
-- the time a rebuild merges topics by. The live projector reads it for the
-- event that last changed a row, to tell whether a record of another topic
-- reaching that row comes before it in append order (and the entity must be
-- folded again from the log). The event's first record keeps it: the log's
-- fold takes each event at its first position. Null for rows written before
-- this column, which fall back to received_at (it precedes the append).

-- +goose Up
ALTER TABLE webhook_events ADD COLUMN appended_at timestamptz;

-- +goose Down
ALTER TABLE webhook_events DROP COLUMN appended_at;
