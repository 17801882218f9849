-- Read models projected from the event log. Names are unqualified: the
-- schema comes from search_path, so a rebuild can fill a fresh schema and
-- tests can isolate themselves.

-- +goose Up
CREATE TABLE webhook_events (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_id        text        NOT NULL,
    -- SoftPro's event id: unique within an integration only.
    event_id              text        NOT NULL,
    event_type            text        NOT NULL,
    payload               jsonb       NOT NULL,
    headers               jsonb       NOT NULL DEFAULT '{}',
    status                text        NOT NULL CHECK (status IN ('RECEIVED', 'PROCESSING', 'COMPLETED', 'FAILED', 'SKIPPED')),
    received_at           timestamptz NOT NULL DEFAULT now(),
    processing_started_at timestamptz,
    processed_at          timestamptz,
    failed_at             timestamptz,
    -- From receipt by ingest to completion by the projector.
    processing_time_ms    integer,
    retry_count           integer     NOT NULL DEFAULT 0,
    last_retry_at         timestamptz,
    error                 text,
    -- SoftPro's timestamp of the event.
    occurred_at           timestamptz,
    -- Whether the event changed its entity; false for an event older than
    -- the entity's state (newest wins), null when it concerns none.
    applied               boolean,
    source                text        NOT NULL,
    topic                 text        NOT NULL,
    "partition"           integer     NOT NULL,
    "offset"              bigint      NOT NULL,
    CONSTRAINT webhook_events_integration_event_key UNIQUE (integration_id, event_id)
);
CREATE INDEX webhook_events_status_idx ON webhook_events (status);
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);
CREATE INDEX webhook_events_event_type_idx ON webhook_events (event_type);

CREATE TABLE transactions (
    integration_id     text        NOT NULL,
    id                 text        NOT NULL,
    file_number        text        NOT NULL DEFAULT '',
    status             text        NOT NULL DEFAULT '',
    property_address   text        NOT NULL DEFAULT '',
    closing_date       date,
    closed_at          timestamptz,
    softpro_created_at timestamptz NOT NULL,
    -- SoftPro's timestamp of the last applied change; older events never
    -- overwrite it.
    softpro_updated_at timestamptz NOT NULL,
    last_event_id      text        NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    deleted_at         timestamptz,
    payload            jsonb       NOT NULL,
    projected_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, id)
);
CREATE INDEX transactions_status_idx ON transactions (integration_id, status);
CREATE INDEX transactions_file_number_idx ON transactions (integration_id, file_number);
CREATE INDEX transactions_closing_date_idx ON transactions (closing_date);

CREATE TABLE transaction_status_changes (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id text        NOT NULL,
    transaction_id text        NOT NULL,
    from_status    text        NOT NULL,
    to_status      text        NOT NULL,
    changed_at     timestamptz NOT NULL,
    event_id       text        NOT NULL,
    CONSTRAINT transaction_status_changes_event_key UNIQUE (integration_id, event_id)
);
CREATE INDEX transaction_status_changes_txn_idx ON transaction_status_changes (integration_id, transaction_id, changed_at);

CREATE TABLE contacts (
    integration_id     text        NOT NULL,
    id                 text        NOT NULL,
    transaction_id     text        NOT NULL DEFAULT '',
    first_name         text        NOT NULL DEFAULT '',
    last_name          text        NOT NULL DEFAULT '',
    email              text        NOT NULL DEFAULT '',
    phone              text        NOT NULL DEFAULT '',
    role               text        NOT NULL DEFAULT '',
    softpro_created_at timestamptz NOT NULL,
    softpro_updated_at timestamptz NOT NULL,
    last_event_id      text        NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    deleted_at         timestamptz,
    payload            jsonb       NOT NULL,
    projected_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, id)
);
CREATE INDEX contacts_transaction_idx ON contacts (integration_id, transaction_id);
CREATE INDEX contacts_email_idx ON contacts (integration_id, email);

CREATE TABLE documents (
    integration_id     text        NOT NULL,
    id                 text        NOT NULL,
    transaction_id     text        NOT NULL DEFAULT '',
    name               text        NOT NULL DEFAULT '',
    document_type      text        NOT NULL DEFAULT '',
    url                text        NOT NULL DEFAULT '',
    softpro_created_at timestamptz NOT NULL,
    softpro_updated_at timestamptz NOT NULL,
    last_event_id      text        NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    deleted_at         timestamptz,
    payload            jsonb       NOT NULL,
    projected_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, id)
);
CREATE INDEX documents_transaction_idx ON documents (integration_id, transaction_id);

CREATE TABLE tasks (
    integration_id     text        NOT NULL,
    id                 text        NOT NULL,
    transaction_id     text        NOT NULL DEFAULT '',
    title              text        NOT NULL DEFAULT '',
    status             text        NOT NULL DEFAULT '',
    assigned_to        text        NOT NULL DEFAULT '',
    due_date           timestamptz,
    completed_at       timestamptz,
    softpro_created_at timestamptz NOT NULL,
    softpro_updated_at timestamptz NOT NULL,
    last_event_id      text        NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    deleted_at         timestamptz,
    payload            jsonb       NOT NULL,
    projected_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, id)
);
CREATE INDEX tasks_transaction_idx ON tasks (integration_id, transaction_id);
CREATE INDEX tasks_status_idx ON tasks (integration_id, status);

-- Counts reflect the current status of the events received in the hour:
-- an event that failed and later completed on a manual retry moves from
-- failed to completed.
CREATE TABLE integration_metrics_hourly (
    integration_id     text        NOT NULL,
    event_type         text        NOT NULL,
    hour               timestamptz NOT NULL,
    received           bigint      NOT NULL DEFAULT 0,
    completed          bigint      NOT NULL DEFAULT 0,
    failed             bigint      NOT NULL DEFAULT 0,
    skipped            bigint      NOT NULL DEFAULT 0,
    total_processing_ms bigint     NOT NULL DEFAULT 0,
    max_processing_ms  bigint      NOT NULL DEFAULT 0,
    -- Completed events per processing-time bucket; the upper bounds in ms
    -- are projections.LatencyBucketsMs (10, 25, 50, 100, 250, 500, 1000,
    -- 2500, 5000, 10000, 30000, 60000, +Inf).
    latency_buckets    bigint[]    NOT NULL DEFAULT '{}',
    PRIMARY KEY (integration_id, event_type, hour)
);
CREATE INDEX integration_metrics_hourly_hour_idx ON integration_metrics_hourly (hour);

-- The next offset each projection will apply per partition, advanced in the
-- same transaction as the effects of the events before it.
CREATE TABLE projection_checkpoints (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, "partition")
);

-- +goose Down
DROP TABLE projection_checkpoints;
DROP TABLE integration_metrics_hourly;
DROP TABLE tasks;
DROP TABLE documents;
DROP TABLE contacts;
DROP TABLE transaction_status_changes;
DROP TABLE transactions;
DROP TABLE webhook_events;
