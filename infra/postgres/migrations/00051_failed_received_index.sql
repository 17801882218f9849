-- An integration's FAILED events by receipt: the metrics route's top errors
-- of the last 24 hours read them, which the index on integration_id alone
-- could not narrow to the window, so the planner built a bitmap of every
-- event of the integration instead. The wider index still serves the batch
-- retry and the poisoned-gap count (integration_id first).

-- +goose Up
CREATE INDEX webhook_events_failed_received_idx ON webhook_events (integration_id, received_at) WHERE status = 'FAILED';
DROP INDEX webhook_events_failed_idx;

-- +goose Down
CREATE INDEX webhook_events_failed_idx ON webhook_events (integration_id) WHERE status = 'FAILED';
DROP INDEX webhook_events_failed_received_idx;
