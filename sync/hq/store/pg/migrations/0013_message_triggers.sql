-- The reminder triggers' indexes, kept in the transaction that changes
-- their source (ingest), so the per-day jobs read only the members a day
-- concerns; and the record of each day's job, whose row is the claim that
-- lets exactly one HQ process run it.
CREATE TABLE message_members (
    member_id   text        PRIMARY KEY,
    store       text        NOT NULL DEFAULT '',  -- home store: where the member enrolled
    birthday_md text,                             -- 'MM-DD'; NULL when unknown
    enrolled_at timestamptz NOT NULL
);
CREATE INDEX message_members_birthday ON message_members (birthday_md) WHERE birthday_md IS NOT NULL;
CREATE INDEX message_members_enrolled ON message_members (enrolled_at);

-- Points earned per member and last valid local date of their lots. Most
-- uploads add to a row that exists (a member's year): room left on each
-- page lets that update stay on its page without touching the indexes.
CREATE TABLE message_lots (
    member_id text   NOT NULL,
    expires   date   NOT NULL,
    points    bigint NOT NULL,
    PRIMARY KEY (member_id, expires)
) WITH (fillfactor = 70);
CREATE INDEX message_lots_expires ON message_lots (expires);

-- Members turning at risk or dormant are found by their last sale.
CREATE INDEX members_last_sale ON members (last_sale) WHERE last_sale IS NOT NULL;

CREATE TABLE message_days (
    day             date        PRIMARY KEY,   -- in the chain's zone
    ran_at          timestamptz NOT NULL,
    birthday        integer     NOT NULL DEFAULT 0,
    points_expiring integer     NOT NULL DEFAULT 0,
    recall          integer     NOT NULL DEFAULT 0
);
