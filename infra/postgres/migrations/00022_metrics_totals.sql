-- Totals of integration_metrics_hourly over every integration, per event
-- type and hour, kept by a trigger so every writer of the hourly rows (the
-- projector, failures, manual retries) keeps them in step. Stats and event
-- counts across all integrations read these thousands of rows instead of
-- summing one row per integration, type and hour.

-- +goose Up
CREATE TABLE metrics_hourly_totals (
    event_type          text        NOT NULL,
    hour                timestamptz NOT NULL,
    received            bigint      NOT NULL DEFAULT 0,
    completed           bigint      NOT NULL DEFAULT 0,
    failed              bigint      NOT NULL DEFAULT 0,
    skipped             bigint      NOT NULL DEFAULT 0,
    total_processing_ms bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (event_type, hour)
);

-- +goose StatementBegin
CREATE FUNCTION metrics_hourly_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r  bigint := NEW.received;
    c  bigint := NEW.completed;
    f  bigint := NEW.failed;
    s  bigint := NEW.skipped;
    ms bigint := NEW.total_processing_ms;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        r := r - OLD.received;
        c := c - OLD.completed;
        f := f - OLD.failed;
        s := s - OLD.skipped;
        ms := ms - OLD.total_processing_ms;
    END IF;
    IF r = 0 AND c = 0 AND f = 0 AND s = 0 AND ms = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO metrics_hourly_totals AS t (event_type, hour, received, completed, failed, skipped, total_processing_ms)
    VALUES (NEW.event_type, NEW.hour, r, c, f, s, ms)
    ON CONFLICT (event_type, hour) DO UPDATE SET
        received = t.received + EXCLUDED.received, completed = t.completed + EXCLUDED.completed,
        failed = t.failed + EXCLUDED.failed, skipped = t.skipped + EXCLUDED.skipped,
        total_processing_ms = t.total_processing_ms + EXCLUDED.total_processing_ms;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER metrics_hourly_roll_up AFTER INSERT OR UPDATE ON integration_metrics_hourly
    FOR EACH ROW EXECUTE FUNCTION metrics_hourly_roll_up();

INSERT INTO metrics_hourly_totals (event_type, hour, received, completed, failed, skipped, total_processing_ms)
SELECT event_type, hour, sum(received), sum(completed), sum(failed), sum(skipped), sum(total_processing_ms)
FROM integration_metrics_hourly GROUP BY event_type, hour;

-- +goose Down
DROP TRIGGER metrics_hourly_roll_up ON integration_metrics_hourly;
DROP FUNCTION metrics_hourly_roll_up();
DROP TABLE metrics_hourly_totals;
