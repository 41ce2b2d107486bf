-- HQ schema v1. Feeds (export, member changes) are ordered by the writing
-- transaction's id (xid8) and only rows older than the oldest transaction
-- still running are handed out, so a later commit never overtakes an
-- earlier one that is still open.
CREATE TABLE credentials (
    role        text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL DEFAULT '',
    time_zone   text        NOT NULL DEFAULT '',
    token_hash  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (role, id)
);

CREATE TABLE tills (
    store text   NOT NULL,
    till  text   NOT NULL,
    acked bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store, till)
);

CREATE TABLE entries (
    id          bigserial   NOT NULL,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    store       text        NOT NULL,
    till        text        NOT NULL,
    seq         bigint      NOT NULL,
    kind        text        NOT NULL,
    member_id   text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    body        jsonb       NOT NULL,
    PRIMARY KEY (store, till, seq)
);
CREATE INDEX entries_export ON entries (xid, id);

CREATE TABLE dead_letters (
    store       text        NOT NULL,
    till        text        NOT NULL,
    seq         bigint      NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    received_at timestamptz NOT NULL,
    resolved_at timestamptz,
    PRIMARY KEY (store, till, seq)
);

CREATE TABLE members (
    id           text        PRIMARY KEY,
    data         jsonb,
    points       bigint      NOT NULL DEFAULT 0,
    stored_value bigint      NOT NULL DEFAULT 0,
    flagged      boolean     NOT NULL DEFAULT false,
    last_sale    timestamptz,
    tier_at      timestamptz,
    coupons      jsonb       NOT NULL DEFAULT '[]',
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX members_changes ON members (xid, id);

CREATE TABLE programs (
    version        integer     PRIMARY KEY,
    effective_from text        NOT NULL,
    source         text        NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now()
);
