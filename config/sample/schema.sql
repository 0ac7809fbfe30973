-- tollgate's sample schema: users and their orders. Loaded by tests/pg.sh (as the
-- superuser, into database "app"); config/sample/data.sql fills it.
-- The gateway connects as role "tollgate", which gets the rights it needs below.

CREATE TABLE users (
    id          bigserial   PRIMARY KEY,
    email       text        UNIQUE NOT NULL,
    name        text        NOT NULL,
    settings    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    active      bool        NOT NULL DEFAULT true
);

CREATE TABLE orders (
    id          bigserial     PRIMARY KEY,
    user_id     bigint        NOT NULL REFERENCES users (id),
    total       numeric(12,2) NOT NULL,
    status      text          NOT NULL
                              CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    tags        text[]        NOT NULL DEFAULT '{}',
    placed_at   timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX orders_user_id_idx ON orders (user_id);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON users, orders TO tollgate;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE users_id_seq, orders_id_seq TO tollgate;
