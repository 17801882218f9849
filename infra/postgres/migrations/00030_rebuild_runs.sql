-- Rebuild and point-in-time runs: what they build, where they are, how
-- fast they go. Read by the projections status endpoint and the CLI; the
-- table stays in the live schema when a rebuild swaps the read models.

-- +goose Up
CREATE TABLE rebuild_runs (
    id                bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text             NOT NULL CHECK (kind IN ('rebuild', 'as-of')),
    schema_name       text             NOT NULL DEFAULT '',
    as_of             timestamptz,
    state             text             NOT NULL,
    offsets_at_start  bigint           NOT NULL DEFAULT 0,
    applied           bigint           NOT NULL DEFAULT 0,
    offsets_left      bigint           NOT NULL DEFAULT 0,
    events_per_second double precision NOT NULL DEFAULT 0,
    eta_ms            bigint           NOT NULL DEFAULT 0,
    paused_ms         bigint           NOT NULL DEFAULT 0,
    started_at        timestamptz      NOT NULL,
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    error             text
);
CREATE INDEX rebuild_runs_active_idx ON rebuild_runs (kind) WHERE state IN ('building', 'sealing', 'catching-up', 'paused');

-- +goose Down
DROP TABLE rebuild_runs;
