-- Indexes no query needs, which only cost writes (and a rebuild's seal):
-- documents_transaction_idx and tasks_transaction_idx are the leading part
-- of the *_transaction_updated_idx that 00020 added for the lists' keyset
-- order (00021 dropped the others of that kind), and contacts_email_idx
-- indexes email as stored while the contact filter matches lower(email),
-- which contacts_email_lower_idx serves.

-- +goose Up
DROP INDEX documents_transaction_idx;
DROP INDEX tasks_transaction_idx;
DROP INDEX contacts_email_idx;

-- +goose Down
CREATE INDEX contacts_email_idx ON contacts (integration_id, email);
CREATE INDEX tasks_transaction_idx ON tasks (integration_id, transaction_id);
CREATE INDEX documents_transaction_idx ON documents (integration_id, transaction_id);
