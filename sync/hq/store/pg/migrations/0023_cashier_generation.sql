-- The cashier lists' generation: every statement that changes cashiers
-- adds one to it in its own transaction, so an HQ process that read it
-- knows, from one row, whether any store's list changed since. It lets a
-- pull that is up to date be answered without reading the store's list
-- (FeedHead). Cashiers change by admin action, rarely: the one row
-- serialising those writes costs nothing.
CREATE TABLE cashier_generation (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n   bigint  NOT NULL
);
INSERT INTO cashier_generation (n) VALUES (0);

CREATE FUNCTION cashier_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cashier_generation SET n = n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER cashiers_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cashiers
    FOR EACH STATEMENT EXECUTE FUNCTION cashier_generation_bump();
