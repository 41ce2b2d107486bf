-- KPI aggregates, kept in the transaction that stores the entries
-- (hq.AggConfig.Fold): counters per local day and, summed, per month, and
-- the facts they derive from (one per sale that can still change a figure,
-- one per member). A month's report reads these, never the entries. The
-- rows are built from the entries already stored by the first hq that
-- opens the database after this migration (agg_config.built). Rows are
-- kept per writing till as well, so uploads of different tills never wait
-- for each other on a row; readers sum them. Counters add with wrap-around
-- as Go's int64 does, so a change and its reversal always cancel.
CREATE TABLE agg_config (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    config jsonb   NOT NULL,
    built  boolean NOT NULL DEFAULT false
);
INSERT INTO agg_config (config) VALUES ('{"time_zone":"Asia/Shanghai","at_risk_days":60,"dormant_days":180}');

CREATE TABLE agg_days (
    day             integer NOT NULL, -- days since 1970-01-01, store-local
    scope           text    NOT NULL, -- s store, c chain (store: the writer), k cashier
    store           text    NOT NULL,
    cashier         text    NOT NULL DEFAULT '',
    writer          text    NOT NULL DEFAULT '', -- store/till of the upload that wrote it
    new_members     bigint  NOT NULL DEFAULT 0,
    member_sales    bigint  NOT NULL DEFAULT 0,
    member_amount   bigint  NOT NULL DEFAULT 0,
    points_issued   bigint  NOT NULL DEFAULT 0,
    points_redeemed bigint  NOT NULL DEFAULT 0,
    active          bigint  NOT NULL DEFAULT 0,
    repurchasers    bigint  NOT NULL DEFAULT 0,
    members         bigint  NOT NULL DEFAULT 0,
    at_risk         bigint  NOT NULL DEFAULT 0,
    dormant         bigint  NOT NULL DEFAULT 0,
    enrolments      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, scope, store, cashier, writer)
);

CREATE TABLE agg_months (
    day             integer NOT NULL, -- first day of the month
    scope           text    NOT NULL, -- s store, c chain (store: the writer), k cashier
    store           text    NOT NULL,
    cashier         text    NOT NULL DEFAULT '',
    writer          text    NOT NULL DEFAULT '', -- store/till of the upload that wrote it
    new_members     bigint  NOT NULL DEFAULT 0,
    member_sales    bigint  NOT NULL DEFAULT 0,
    member_amount   bigint  NOT NULL DEFAULT 0,
    points_issued   bigint  NOT NULL DEFAULT 0,
    points_redeemed bigint  NOT NULL DEFAULT 0,
    active          bigint  NOT NULL DEFAULT 0,
    repurchasers    bigint  NOT NULL DEFAULT 0,
    members         bigint  NOT NULL DEFAULT 0,
    at_risk         bigint  NOT NULL DEFAULT 0,
    dormant         bigint  NOT NULL DEFAULT 0,
    enrolments      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, scope, store, cashier, writer)
);

CREATE TABLE agg_sales (
    id   text  PRIMARY KEY, -- sale entry id store/till/seq
    fact jsonb NOT NULL
);

CREATE TABLE agg_members (
    id   text  PRIMARY KEY,
    fact jsonb NOT NULL
);
