-- Scheduled sync: how to reach each integration's SoftPro API, where each
-- sync type's last good point is, and the record of every run.

-- +goose Up
-- One row per integration that syncs. Credentials are sealed with
-- AES-256-GCM by the service (infra/secretbox), never stored in clear.
CREATE TABLE softpro_connections (
    integration_id       text        PRIMARY KEY REFERENCES softpro_integrations (id) ON DELETE CASCADE,
    base_url             text        NOT NULL,
    auth                 text        NOT NULL CHECK (auth IN ('api_key', 'oauth')),
    api_key_sealed       bytea,
    client_id            text        NOT NULL DEFAULT '',
    client_secret_sealed bytea,
    token_url            text        NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- The newest SoftPro updated_at up to which every record of a type has
-- been appended; the next run asks for changes since it (minus an overlap).
CREATE TABLE sync_watermarks (
    integration_id text        NOT NULL REFERENCES softpro_integrations (id) ON DELETE CASCADE,
    sync_type      text        NOT NULL,
    watermark      timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, sync_type)
);

CREATE TABLE sync_runs (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id text        NOT NULL REFERENCES softpro_integrations (id) ON DELETE CASCADE,
    trigger        text        NOT NULL,
    types          text[]      NOT NULL,
    status         text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    -- Records appended per sync type, e.g. {"transactions": 120}.
    records        jsonb       NOT NULL DEFAULT '{}',
    requests       integer     NOT NULL DEFAULT 0,
    rate_limited   integer     NOT NULL DEFAULT 0,
    retries        integer     NOT NULL DEFAULT 0,
    error          text,
    holder         text        NOT NULL DEFAULT ''
);
CREATE INDEX sync_runs_integration_idx ON sync_runs (integration_id, id DESC);

-- +goose Down
DROP TABLE sync_runs;
DROP TABLE sync_watermarks;
DROP TABLE softpro_connections;
