-- Cashier accounts per store; the PIN only as its argon2id hash.
CREATE TABLE cashiers (
    store      text        NOT NULL,
    id         text        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('cashier', 'supervisor')),
    disabled   boolean     NOT NULL DEFAULT false,
    pin_hash   text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (store, id)
);
