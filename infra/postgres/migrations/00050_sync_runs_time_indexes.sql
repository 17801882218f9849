-- An integration's sync runs by start and by finish, for the health and
-- metrics routes: the newest run started, the newest success, and the runs
-- finished in the last 24 hours or 30 days. Without them every request
-- read all of the integration's runs (a run every 5 minutes is 8,640 a
-- month) through sync_runs_integration_idx, several times over.

-- +goose Up
CREATE INDEX sync_runs_integration_started_idx ON sync_runs (integration_id, started_at);
CREATE INDEX sync_runs_integration_finished_idx ON sync_runs (integration_id, finished_at) INCLUDE (status);

-- +goose Down
DROP INDEX sync_runs_integration_finished_idx;
DROP INDEX sync_runs_integration_started_idx;
