-- KPI lifetime rows: per store (and writer), the life-cycle counters of
-- every month row summed into one row at day 1073741824 (hq.LifetimeDay).
-- A report of a recent month takes the life cycle as the lifetime less the
-- months after it, instead of summing every month since the chain began.
-- Ingest keeps them from now on (hq.AggDelta.Rows); these are the sums of
-- the rows already kept.
INSERT INTO agg_months (day, scope, store, cashier, writer, members, at_risk, dormant)
SELECT 1073741824, 's', store, '', writer, sum(members), sum(at_risk), sum(dormant)
FROM agg_months
WHERE scope = 's' AND day < 1073741824
GROUP BY store, writer
HAVING sum(members) <> 0 OR sum(at_risk) <> 0 OR sum(dormant) <> 0;
