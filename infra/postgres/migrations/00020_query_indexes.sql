-- Indexes of the management and query API (projections/query.go). Every
-- list is ordered by a key ending in the row's id, so keyset pages and
-- newest-first event pages are served from an index without a sort.

-- +goose Up
-- Event detail by SoftPro's event id alone (it is unique per integration
-- only).
CREATE INDEX webhook_events_event_id_idx ON webhook_events (event_id);
-- Events list, newest first, unfiltered and by each filter.
CREATE INDEX webhook_events_received_id_idx ON webhook_events (received_at, id);
CREATE INDEX webhook_events_integration_received_idx ON webhook_events (integration_id, received_at, id);
CREATE INDEX webhook_events_type_received_idx ON webhook_events (event_type, received_at, id);
CREATE INDEX webhook_events_status_received_idx ON webhook_events (status, received_at, id);
-- Batch retry of an integration's FAILED events.
CREATE INDEX webhook_events_failed_idx ON webhook_events (integration_id) WHERE status = 'FAILED';

-- Analyst lists: keyset order (updatedAt or closingDate, then id) per
-- integration, and the main filters.
CREATE INDEX transactions_updated_idx ON transactions (integration_id, softpro_updated_at, id);
CREATE INDEX transactions_closing_idx ON transactions (integration_id, (COALESCE(closing_date, 'infinity'::date)), id);
CREATE INDEX transactions_status_updated_idx ON transactions (integration_id, status, softpro_updated_at, id);
CREATE INDEX transaction_status_changes_order_idx ON transaction_status_changes (integration_id, transaction_id, changed_at, id);
CREATE INDEX contacts_updated_idx ON contacts (integration_id, softpro_updated_at, id);
CREATE INDEX contacts_email_lower_idx ON contacts (integration_id, lower(email));
CREATE INDEX contacts_full_name_idx ON contacts (integration_id, lower(first_name || ' ' || last_name) text_pattern_ops);
CREATE INDEX contacts_last_name_idx ON contacts (integration_id, lower(last_name) text_pattern_ops);
CREATE INDEX documents_updated_idx ON documents (integration_id, softpro_updated_at, id);
CREATE INDEX documents_transaction_updated_idx ON documents (integration_id, transaction_id, softpro_updated_at, id);
CREATE INDEX tasks_updated_idx ON tasks (integration_id, softpro_updated_at, id);
CREATE INDEX tasks_status_updated_idx ON tasks (integration_id, status, softpro_updated_at, id);
CREATE INDEX tasks_due_idx ON tasks (integration_id, due_date);
CREATE INDEX tasks_transaction_updated_idx ON tasks (integration_id, transaction_id, softpro_updated_at, id);

-- +goose Down
DROP INDEX tasks_transaction_updated_idx;
DROP INDEX tasks_due_idx;
DROP INDEX tasks_status_updated_idx;
DROP INDEX tasks_updated_idx;
DROP INDEX documents_transaction_updated_idx;
DROP INDEX documents_updated_idx;
DROP INDEX contacts_last_name_idx;
DROP INDEX contacts_full_name_idx;
DROP INDEX contacts_email_lower_idx;
DROP INDEX contacts_updated_idx;
DROP INDEX transaction_status_changes_order_idx;
DROP INDEX transactions_status_updated_idx;
DROP INDEX transactions_closing_idx;
DROP INDEX transactions_updated_idx;
DROP INDEX webhook_events_failed_idx;
DROP INDEX webhook_events_status_received_idx;
DROP INDEX webhook_events_type_received_idx;
DROP INDEX webhook_events_integration_received_idx;
DROP INDEX webhook_events_received_id_idx;
DROP INDEX webhook_events_event_id_idx;
