-- KPI member facts in visit records, and entry totals kept at ingest.
--
-- A member's fact held every day they ever bought at every store
-- (agg_members.fact "visits"), and every sale rewrote it whole: ingest
-- slowed as histories grew. Now agg_members keeps only the enrolment
-- (enrolled members only) and agg_visits one record per member, store and
-- month ([[day, n], ...]) and one per member and month for the chain (store
-- '': the visits of every store summed). A sale reads and rewrites only
-- the records its refold looks at.
CREATE TABLE agg_visits (
    member text    NOT NULL,
    store  text    NOT NULL, -- '': the chain's
    month  integer NOT NULL, -- first day of the month, days since 1970-01-01
    visits bytea   NOT NULL, -- JSON text
    PRIMARY KEY (member, store, month)
) WITH (fillfactor = 50); -- room for a sale's rewrite in the same page: no index change

INSERT INTO agg_visits (member, store, month, visits)
SELECT m.id, s.key,
       date_trunc('month', date '1970-01-01' + (v->>0)::integer)::date - date '1970-01-01',
       convert_to(jsonb_agg(v ORDER BY (v->>0)::integer)::text, 'UTF8')
FROM agg_members m, jsonb_each(m.fact->'visits') AS s, jsonb_array_elements(s.value) AS v
GROUP BY 1, 2, 3;

INSERT INTO agg_visits (member, store, month, visits)
SELECT id, '', date_trunc('month', date '1970-01-01' + day)::date - date '1970-01-01',
       convert_to(jsonb_agg(jsonb_build_array(day, n) ORDER BY day)::text, 'UTF8')
FROM (
    SELECT m.id, (v->>0)::integer AS day, sum((v->>1)::integer) AS n
    FROM agg_members m, jsonb_each(m.fact->'visits') AS s, jsonb_array_elements(s.value) AS v
    GROUP BY 1, 2
) AS x
GROUP BY 1, 3;

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
