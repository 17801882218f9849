-- Every index below is the leading part of a wider one that 00020 added for
-- the query API's keyset ordering, so it only cost writes. The original
-- audit indexes (integrationId, status, receivedAt, eventType) live on as
-- the leading columns of webhook_events_integration_received_idx,
-- _status_received_idx, _received_id_idx and _type_received_idx.

-- +goose Up
DROP INDEX webhook_events_status_idx;
DROP INDEX webhook_events_received_at_idx;
DROP INDEX webhook_events_event_type_idx;
DROP INDEX transactions_status_idx;
DROP INDEX tasks_status_idx;
DROP INDEX transaction_status_changes_txn_idx;

-- +goose Down
CREATE INDEX transaction_status_changes_txn_idx ON transaction_status_changes (integration_id, transaction_id, changed_at);
CREATE INDEX tasks_status_idx ON tasks (integration_id, status);
CREATE INDEX transactions_status_idx ON transactions (integration_id, status);
CREATE INDEX webhook_events_event_type_idx ON webhook_events (event_type);
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);
CREATE INDEX webhook_events_status_idx ON webhook_events (status);
