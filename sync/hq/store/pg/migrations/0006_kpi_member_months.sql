-- KPI member facts in month records, and entry totals kept at ingest.
--
-- A member's fact held every day they ever bought (agg_members.fact
-- "visits"), and every sale rewrote it whole: ingest slowed as histories
-- grew. Now agg_members keeps only the enrolment (enrolled members only)
-- and agg_visits one record per member and month, {"store": [[day, n],
-- ...]}; a sale reads and rewrites the months its refold looks at.
CREATE TABLE agg_visits (
    member text    NOT NULL,
    month  integer NOT NULL, -- first day of the month, days since 1970-01-01
    visits jsonb   NOT NULL,
    PRIMARY KEY (member, month)
);

INSERT INTO agg_visits (member, month, visits)
SELECT id, month, jsonb_object_agg(store, vs)
FROM (
    SELECT m.id, s.key AS store,
           date_trunc('month', date '1970-01-01' + (v->>0)::integer)::date - date '1970-01-01' AS month,
           jsonb_agg(v ORDER BY (v->>0)::integer) AS vs
    FROM agg_members m, jsonb_each(m.fact->'visits') AS s, jsonb_array_elements(s.value) AS v
    GROUP BY m.id, s.key, 3
) AS x
GROUP BY id, month;

UPDATE agg_members SET fact = fact - 'visits' WHERE fact ? 'visits';
DELETE FROM agg_members WHERE NOT coalesce((fact->>'enrolled')::boolean, false);

-- Entry totals per store (/admin/totals), exact (numeric), per writing
-- till as the counter rows are; readers sum them.
CREATE TABLE agg_totals (
    store         text    NOT NULL,
    writer        text    NOT NULL DEFAULT '',
    entries       numeric NOT NULL DEFAULT 0,
    sales         numeric NOT NULL DEFAULT 0,
    sales_due     numeric NOT NULL DEFAULT 0,
    refunds       numeric NOT NULL DEFAULT 0,
    refund_amount numeric NOT NULL DEFAULT 0,
    voids         numeric NOT NULL DEFAULT 0,
    topups        numeric NOT NULL DEFAULT 0,
    points        numeric NOT NULL DEFAULT 0,
    stored_value  numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (store, writer)
);

INSERT INTO agg_totals (store, entries, sales, sales_due, refunds, refund_amount, voids, topups, points, stored_value)
SELECT store, count(*),
       count(*) FILTER (WHERE body ? 'sale'),
       coalesce(sum((body->'sale'->>'due')::numeric) FILTER (WHERE body ? 'sale'), 0),
       count(*) FILTER (WHERE NOT body ? 'sale' AND body ? 'refund'),
       coalesce(sum((body->'refund'->>'amount')::numeric) FILTER (WHERE NOT body ? 'sale' AND body ? 'refund'), 0),
       count(*) FILTER (WHERE NOT body ?| array['sale', 'refund'] AND body ? 'void'),
       count(*) FILTER (WHERE NOT body ?| array['sale', 'refund', 'void'] AND body ? 'topup'),
       coalesce(sum((body->>'points_delta')::numeric), 0),
       coalesce(sum((body->>'stored_value_delta')::numeric), 0)
FROM entries
GROUP BY store;
