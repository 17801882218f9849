-- The entity lists' indexes carry the deleted flag. A list's total counts
-- the rows of its filter that are not deleted; the flag was only in the
-- table, so counting an integration's 3,300 open transactions visited
-- 2,000 table pages (8 ms) where the index alone now answers (1.5 ms).
-- The lists themselves keep their plans.

-- +goose Up
DROP INDEX transactions_updated_idx;
CREATE INDEX transactions_updated_idx ON transactions (integration_id, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX transactions_status_updated_idx;
CREATE INDEX transactions_status_updated_idx ON transactions (integration_id, status, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX transactions_closing_idx;
CREATE INDEX transactions_closing_idx ON transactions (integration_id, (COALESCE(closing_date, 'infinity'::date)), id) INCLUDE (deleted);
DROP INDEX contacts_updated_idx;
CREATE INDEX contacts_updated_idx ON contacts (integration_id, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX documents_updated_idx;
CREATE INDEX documents_updated_idx ON documents (integration_id, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX documents_transaction_updated_idx;
CREATE INDEX documents_transaction_updated_idx ON documents (integration_id, transaction_id, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX tasks_updated_idx;
CREATE INDEX tasks_updated_idx ON tasks (integration_id, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX tasks_status_updated_idx;
CREATE INDEX tasks_status_updated_idx ON tasks (integration_id, status, softpro_updated_at, id) INCLUDE (deleted);
DROP INDEX tasks_transaction_updated_idx;
CREATE INDEX tasks_transaction_updated_idx ON tasks (integration_id, transaction_id, softpro_updated_at, id) INCLUDE (deleted);

-- +goose Down
DROP INDEX transactions_updated_idx;
CREATE INDEX transactions_updated_idx ON transactions (integration_id, softpro_updated_at, id);
DROP INDEX transactions_status_updated_idx;
CREATE INDEX transactions_status_updated_idx ON transactions (integration_id, status, softpro_updated_at, id);
DROP INDEX transactions_closing_idx;
CREATE INDEX transactions_closing_idx ON transactions (integration_id, (COALESCE(closing_date, 'infinity'::date)), id);
DROP INDEX contacts_updated_idx;
CREATE INDEX contacts_updated_idx ON contacts (integration_id, softpro_updated_at, id);
DROP INDEX documents_updated_idx;
CREATE INDEX documents_updated_idx ON documents (integration_id, softpro_updated_at, id);
DROP INDEX documents_transaction_updated_idx;
CREATE INDEX documents_transaction_updated_idx ON documents (integration_id, transaction_id, softpro_updated_at, id);
DROP INDEX tasks_updated_idx;
CREATE INDEX tasks_updated_idx ON tasks (integration_id, softpro_updated_at, id);
DROP INDEX tasks_status_updated_idx;
CREATE INDEX tasks_status_updated_idx ON tasks (integration_id, status, softpro_updated_at, id);
DROP INDEX tasks_transaction_updated_idx;
CREATE INDEX tasks_transaction_updated_idx ON tasks (integration_id, transaction_id, softpro_updated_at, id);
