-- +goose Up
-- Integrations: one row per SoftPro 360 connection. Names are not
-- schema-qualified: each schema on the search_path migrates on its own.
CREATE TABLE softpro_integrations (
    id                     text        PRIMARY KEY,
    organization_id        text        NOT NULL,
    active                 boolean     NOT NULL DEFAULT true,
    webhook_enabled        boolean     NOT NULL DEFAULT true,
    signature_scheme       text        NOT NULL DEFAULT 'softpro',
    sync_enabled           boolean     NOT NULL DEFAULT true,
    sync_frequency         integer     NOT NULL DEFAULT 15,
    sync_types             text[]      NOT NULL DEFAULT ARRAY['transactions', 'contacts', 'documents'],
    last_sync_at           timestamptz,
    last_scheduled_sync_at timestamptz,
    sync_status            text        NOT NULL DEFAULT 'IDLE',
    last_sync_error        text,
    rate_limit             integer     NOT NULL DEFAULT 100,
    -- NULL means "use the service's default webhook rate limit".
    ingest_rate_limit      integer     CHECK (ingest_rate_limit > 0),
    webhook_retry_config   jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX softpro_integrations_organization_id_idx ON softpro_integrations (organization_id);
CREATE INDEX softpro_integrations_active_idx ON softpro_integrations (active);

-- Webhook signing secrets, sealed with AES-256-GCM by the service
-- (infra/secretbox); the plain secret is never stored. A secret verifies
-- signatures from not_before until not_after (open-ended when NULL), which
-- lets a rotated-out secret keep working for a grace period.
CREATE TABLE integration_secrets (
    integration_id text        NOT NULL REFERENCES softpro_integrations (id) ON DELETE CASCADE,
    key_id         text        NOT NULL,
    sealed         bytea       NOT NULL,
    not_before     timestamptz NOT NULL,
    not_after      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, key_id)
);

-- +goose Down
DROP TABLE integration_secrets;
DROP TABLE softpro_integrations;
