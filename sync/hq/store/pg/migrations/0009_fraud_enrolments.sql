-- Enrolment facts for the fraud signals (hq.EnrolFact), kept at ingest:
-- one row per member with its enrolment, first sale and first void, so a
-- month's report reads that month's enrolments by index and looks earlier
-- members up by mobile or card token, however long the history and
-- whether or not the entries were archived since. A sale or void that
-- arrives before its member's enrolment makes a row with month '' that
-- the enrolment completes.
CREATE TABLE fraud_enrolments (
    member_id   text        PRIMARY KEY,
    store       text        NOT NULL DEFAULT '',
    till        text        NOT NULL DEFAULT '',
    seq         bigint      NOT NULL DEFAULT 0,
    cashier     text        NOT NULL DEFAULT '',
    month       text        NOT NULL DEFAULT '', -- store-local YYYY-MM of the enrolment
    at          timestamptz,
    mobile      text        NOT NULL DEFAULT '',
    card_tokens text[]      NOT NULL DEFAULT '{}',
    first_sale  timestamptz,
    sales       bigint      NOT NULL DEFAULT 0,
    first_void  timestamptz,
    voids       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX fraud_enrolments_month ON fraud_enrolments (month, store, cashier) WHERE month <> '';
CREATE INDEX fraud_enrolments_mobile ON fraud_enrolments (mobile);
CREATE INDEX fraud_enrolments_cards ON fraud_enrolments USING gin (card_tokens);

-- Sales and voids each cashier rang per store-local month, shown beside
-- their enrolments. One row per till as well: a till's uploads take turns
-- (its tills row is locked), so no two uploads wait on one counter row.
CREATE TABLE fraud_cashier_months (
    month   text   NOT NULL,
    store   text   NOT NULL,
    cashier text   NOT NULL,
    till    text   NOT NULL,
    sales   bigint NOT NULL DEFAULT 0,
    voids   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (month, store, cashier, till)
);

-- backfill: the same facts from the entries stored so far.
INSERT INTO fraud_enrolments (member_id, store, till, seq, cashier, month, at, mobile, card_tokens)
SELECT DISTINCT ON (m) m, store, till, seq, coalesce(body->>'cashier', ''),
    CASE WHEN body->>'local' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' THEN left(body->>'local', 7)
         ELSE to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') END,
    at, coalesce(body->'enrol'->'member'->>'mobile', ''),
    CASE WHEN jsonb_typeof(body->'enrol'->'member'->'card_tokens') = 'array'
         THEN ARRAY(SELECT jsonb_array_elements_text(body->'enrol'->'member'->'card_tokens')) ELSE '{}' END
FROM (SELECT coalesce(nullif(member_id, ''), body->'enrol'->'member'->>'id', '') AS m, * FROM entries
      WHERE kind = 'enrol' AND jsonb_typeof(body->'enrol') = 'object') e
WHERE m <> ''
ORDER BY m, at, store COLLATE "C", till COLLATE "C", seq;

INSERT INTO fraud_enrolments (member_id, first_sale, sales, first_void, voids)
SELECT member_id,
    min(at) FILTER (WHERE kind = 'sale'), count(*) FILTER (WHERE kind = 'sale'),
    min(at) FILTER (WHERE kind = 'void'), count(*) FILTER (WHERE kind = 'void')
FROM entries WHERE kind IN ('sale', 'void') AND member_id <> ''
GROUP BY member_id
ON CONFLICT (member_id) DO UPDATE SET first_sale = excluded.first_sale, sales = excluded.sales,
    first_void = excluded.first_void, voids = excluded.voids;

INSERT INTO fraud_cashier_months (month, store, cashier, till, sales, voids)
SELECT CASE WHEN body->>'local' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' THEN left(body->>'local', 7)
            ELSE to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') END AS month,
    store, coalesce(body->>'cashier', '') AS cashier, till,
    count(*) FILTER (WHERE kind = 'sale'), count(*) FILTER (WHERE kind = 'void')
FROM entries WHERE kind IN ('sale', 'void')
GROUP BY 1, 2, 3, 4;
