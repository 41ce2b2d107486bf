-- Member messages owed to the chain's gateway (hq.Outbox). Written in the
-- transaction of the change that caused them; id is stable per cause, so a
-- cause seen twice stores one message. A sender claims due pending rows
-- with FOR UPDATE SKIP LOCKED and leases them by moving due_at to the
-- lease's end under a fresh lease token: a sender that dies leaves a lease
-- that simply falls due again.
CREATE TABLE outbox (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL,
    member      text        NOT NULL,
    store       text        NOT NULL DEFAULT '',
    to_addr     text        NOT NULL,
    lang        text        NOT NULL DEFAULT '',
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    not_before  timestamptz,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    status      text        NOT NULL DEFAULT 'pending',
    due_at      timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    lease       text        NOT NULL DEFAULT '',
    last_error  text        NOT NULL DEFAULT '',
    done_at     timestamptz
);
-- The sender's scan: pending rows by due time, nothing else. Listings
-- read the newest rows of a member or a status by seq, so their cost
-- follows the page asked for, not the history kept.
CREATE INDEX outbox_due ON outbox (due_at, seq) WHERE status = 'pending';
CREATE UNIQUE INDEX outbox_seq ON outbox (seq);
CREATE INDEX outbox_member ON outbox (member, seq);
CREATE INDEX outbox_status ON outbox (status, seq);

-- Consent to messages as it stands per member, and every change with its
-- time and source.
CREATE TABLE member_consent (
    member  text        PRIMARY KEY,
    status  text        NOT NULL,
    at      timestamptz NOT NULL,
    source  text        NOT NULL DEFAULT ''
);
CREATE TABLE member_consent_log (
    seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member  text        NOT NULL,
    status  text        NOT NULL,
    at      timestamptz NOT NULL,
    source  text        NOT NULL DEFAULT '',
    logged  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX member_consent_log_member ON member_consent_log (member, seq);
