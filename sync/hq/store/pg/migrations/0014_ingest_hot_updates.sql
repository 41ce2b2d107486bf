-- Rows every upload rewrites keep room on their page, so the new version
-- stays there and no index changes (a HOT update). Without it each sale of a
-- member rewrote fraud_enrolments' four indexes, its GIN index among them.
-- Applies to pages written from now on.
ALTER TABLE fraud_enrolments SET (fillfactor = 50);
ALTER TABLE fraud_cashier_months SET (fillfactor = 70);
ALTER TABLE agg_days SET (fillfactor = 70);
ALTER TABLE agg_months SET (fillfactor = 70);
ALTER TABLE agg_totals SET (fillfactor = 50);
ALTER TABLE tills SET (fillfactor = 50);
