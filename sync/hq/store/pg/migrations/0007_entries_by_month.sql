-- Entries partitioned by the month HQ received them (received_at, months
-- in UTC), so old months can be archived to files and dropped whole
-- (hq archive) instead of deleted row by row.
--
-- Why the month received and not the month of the sale (in the store's
-- zone): every upload then writes into the current month's partition,
-- whatever the age of the sales it carries (a till offline for weeks, a
-- refund of an old sale, a dead letter resolved later), so a month once
-- archived never receives rows again and its file stays complete; the
-- export feed is ordered by the writing transaction, which follows the
-- time received, so an archived month is (all but a few rows at its end)
-- a prefix of the feed that readers have long passed; and routing needs no
-- time zone, which the database does not know for every store. Reports by
-- the sale's local day do not read entries: they read the KPI aggregates.
--
-- Exactly once: a partitioned table's unique keys must hold the partition
-- key, so the primary key is (store, till, seq, received_at). What makes an
-- upload exactly-once is tills.acked, locked by each upload and never
-- archived: entries at or below a till's acked sequence are answered as
-- duplicates and never stored again, archived or not (a dead letter is
-- stored once, when it is resolved, which dead_letters.resolved_at
-- guards). The key's (store, till, seq) prefix serves lookups by entry id.
--
-- Partitions are created by hq itself (for the current and next month on
-- open and every few minutes, and for any other month an insert needs),
-- never by hand.
ALTER TABLE entries RENAME TO entries_unpartitioned;
ALTER TABLE entries_unpartitioned RENAME CONSTRAINT entries_pkey TO entries_unpartitioned_pkey;
ALTER INDEX entries_export RENAME TO entries_unpartitioned_export;

CREATE TABLE entries (
    id          bigint      NOT NULL DEFAULT nextval('entries_id_seq'),
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    store       text        NOT NULL,
    till        text        NOT NULL,
    seq         bigint      NOT NULL,
    kind        text        NOT NULL,
    member_id   text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    body        jsonb       NOT NULL,
    PRIMARY KEY (store, till, seq, received_at)
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE entries_id_seq OWNED BY entries.id;
CREATE INDEX entries_export ON entries (xid, id);

DO $$
DECLARE
    m date;
    last date;
BEGIN
    SELECT date_trunc('month', min(received_at) AT TIME ZONE 'UTC')::date INTO m FROM entries_unpartitioned;
    last := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')::date;
    IF m IS NULL OR m > last THEN
        m := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    END IF;
    SELECT greatest(last, date_trunc('month', max(received_at) AT TIME ZONE 'UTC')::date) INTO last FROM entries_unpartitioned;
    WHILE m <= last LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF entries FOR VALUES FROM (%L) TO (%L)',
            'entries_' || to_char(m, 'YYYY_MM'),
            (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;

INSERT INTO entries (id, xid, store, till, seq, kind, member_id, at, received_at, body)
SELECT id, xid, store, till, seq, kind, member_id, at, received_at, body FROM entries_unpartitioned;
DROP TABLE entries_unpartitioned;

-- One row per archived month: its manifest (counts, per-store totals,
-- SHA-256, first and last export positions). /admin/totals adds the
-- totals, the export feed tells a reader still behind last_pos where the
-- rows went, and verify reads the files it names.
CREATE TABLE archives (
    id          bigserial   PRIMARY KEY,
    month       text        NOT NULL,
    manifest    jsonb       NOT NULL,
    last_x      xid8        NOT NULL,
    last_n      bigint      NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);

-- What refunds and voids arriving after their sale was archived need of
-- it: the sale entry cut to the fields the KPI fold reads (store, till,
-- seq, cashier, member, time, due, points earned and redeemed), kept for
-- the sales that can still change a figure (member sales and sales that
-- moved points).
CREATE TABLE archived_sales (
    store text  NOT NULL,
    till  text  NOT NULL,
    seq   bigint NOT NULL,
    body  jsonb NOT NULL,
    PRIMARY KEY (store, till, seq)
);
