-- HQ schema v2: reviews of flagged members (who cleared the flag, when, and
-- the balances as they stood; the entries stay), and an index for listing
-- the flagged members.
ALTER TABLE members ADD COLUMN reviews jsonb NOT NULL DEFAULT '[]';
CREATE INDEX members_flagged ON members (id) WHERE flagged;
