-- HQ schema v3: the member changes feed reads a log of the members each
-- transaction changed, so members carries no index on xid. Every ingest
-- rewrites hundreds of member rows; with xid unindexed those updates are
-- heap-only (HOT) and no longer add two index entries a member. members.xid
-- stays: it names a member's last change, and the feed hands a member out
-- only at that position, once.
CREATE TABLE member_changes (
    xid xid8   NOT NULL DEFAULT pg_current_xact_id() PRIMARY KEY,
    ids text[] NOT NULL
);
INSERT INTO member_changes (xid, ids) SELECT xid, array_agg(id ORDER BY id) FROM members GROUP BY xid;
DROP INDEX members_changes;
-- Half of each page stays free for the next versions of its rows, so the
-- updates stay heap-only while concurrent ingests keep old versions alive
-- (at 80% a fifth of them were not).
ALTER TABLE members SET (fillfactor = 50);
