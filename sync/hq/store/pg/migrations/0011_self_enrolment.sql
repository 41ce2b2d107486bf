-- Self-enrolment by QR: pending one-time codes (hashed), card page links
-- (hashed tokens) and the consent record of each self-enrolled member.
CREATE TABLE IF NOT EXISTS enrol_pending (
    mobile text PRIMARY KEY,
    body   jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS card_links (
    token_hash text PRIMARY KEY,
    member_id  text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS card_links_member ON card_links (member_id);

CREATE TABLE IF NOT EXISTS web_enrolments (
    member_id text PRIMARY KEY,
    body      jsonb NOT NULL
);
