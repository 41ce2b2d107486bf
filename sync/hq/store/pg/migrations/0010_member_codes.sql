-- Member codes: HQ's signing keys (one active, retired ones kept until
-- their codes have expired), every first use of a code, and the repeats.
CREATE TABLE member_code_keys (
    id           text        PRIMARY KEY,
    private      bytea       NOT NULL,
    short_secret bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz
);
-- At most one active key, so HQ processes racing on first use agree.
CREATE UNIQUE INDEX member_code_keys_one_active ON member_code_keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE member_code_claims (
    code       text        PRIMARY KEY,
    member     text        NOT NULL,
    store      text        NOT NULL,
    till       text        NOT NULL,
    seen_at    timestamptz NOT NULL,
    expires    timestamptz NOT NULL,
    received   timestamptz NOT NULL,
    late       boolean     NOT NULL DEFAULT false
);

CREATE TABLE member_code_repeats (
    code       text        NOT NULL REFERENCES member_code_claims (code),
    member     text        NOT NULL,
    store      text        NOT NULL,
    till       text        NOT NULL,
    seen_at    timestamptz NOT NULL,
    expires    timestamptz NOT NULL,
    received   timestamptz NOT NULL,
    late       boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (code, store, till)
);
CREATE INDEX member_code_repeats_received ON member_code_repeats (received);
