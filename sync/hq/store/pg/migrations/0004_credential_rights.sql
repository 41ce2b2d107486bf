-- Rights an admin credential was issued with beyond its role ('pii': read
-- members' personal data unmasked). Existing credentials have none.
ALTER TABLE credentials ADD COLUMN rights text[] NOT NULL DEFAULT '{}';
