-- The totals also follow deletes of hourly metrics rows: a row deleted
-- behind the system's back and then counted again from the audit (gaps
-- fill's recount) is not counted twice in the totals.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION metrics_hourly_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r  bigint;
    c  bigint;
    f  bigint;
    s  bigint;
    ms bigint;
    t  text;
    h  timestamptz;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := -OLD.received;
        c := -OLD.completed;
        f := -OLD.failed;
        s := -OLD.skipped;
        ms := -OLD.total_processing_ms;
        t := OLD.event_type;
        h := OLD.hour;
    ELSE
        r := NEW.received;
        c := NEW.completed;
        f := NEW.failed;
        s := NEW.skipped;
        ms := NEW.total_processing_ms;
        t := NEW.event_type;
        h := NEW.hour;
        IF TG_OP = 'UPDATE' THEN
            r := r - OLD.received;
            c := c - OLD.completed;
            f := f - OLD.failed;
            s := s - OLD.skipped;
            ms := ms - OLD.total_processing_ms;
        END IF;
    END IF;
    IF r = 0 AND c = 0 AND f = 0 AND s = 0 AND ms = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO metrics_hourly_totals AS x (event_type, hour, received, completed, failed, skipped, total_processing_ms)
    VALUES (t, h, r, c, f, s, ms)
    ON CONFLICT (event_type, hour) DO UPDATE SET
        received = x.received + EXCLUDED.received, completed = x.completed + EXCLUDED.completed,
        failed = x.failed + EXCLUDED.failed, skipped = x.skipped + EXCLUDED.skipped,
        total_processing_ms = x.total_processing_ms + EXCLUDED.total_processing_ms;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP TRIGGER metrics_hourly_roll_up ON integration_metrics_hourly;
CREATE TRIGGER metrics_hourly_roll_up AFTER INSERT OR UPDATE OR DELETE ON integration_metrics_hourly
    FOR EACH ROW EXECUTE FUNCTION metrics_hourly_roll_up();

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION metrics_hourly_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TRIGGER metrics_hourly_roll_up ON integration_metrics_hourly;
CREATE TRIGGER metrics_hourly_roll_up AFTER INSERT OR UPDATE ON integration_metrics_hourly
    FOR EACH ROW EXECUTE FUNCTION metrics_hourly_roll_up();
