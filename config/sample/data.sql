-- Sample data for config/sample/schema.sql, generated in the database (no files):
--     psql -v users=1000000 -f data.sql     (tests/pg.sh passes TG_SAMPLE_USERS)
-- :users users and 2 * :users orders. Deterministic, so tests can rely on it:
--   user i:   email 'user<i>@example.com', name 'User <i>', active unless i % 10 = 0,
--             settings {"theme": dark|light, "lang": en|de|fr},
--             created_at 2024-01-01 00:00:00+00 plus i minutes
--   order j:  user_id 1 + (j - 1) % :users (so every user has exactly 2 orders:
--             j = u and j = u + :users), status new/paid/shipped/cancelled by
--             (j + (j - 1) / :users) % 4 (a user's two orders differ in status),
--             total (j * 7919 % 99991) / 100, tags by j % 3, placed_at user's + j s
-- The foreign key and the index are rebuilt once after the load rather than
-- checked row by row, which is much faster.

\set ON_ERROR_STOP 1
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';

BEGIN;

ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;
DROP INDEX orders_user_id_idx;

INSERT INTO users (id, email, name, settings, created_at, active)
SELECT i,
       'user' || i || '@example.com',
       'User ' || i,
       jsonb_build_object('theme', CASE WHEN i % 2 = 0 THEN 'dark' ELSE 'light' END,
                          'lang', (ARRAY['en', 'de', 'fr'])[1 + i % 3]),
       timestamptz '2024-01-01 00:00:00+00' + make_interval(mins => i::int),
       i % 10 <> 0
FROM generate_series(1, :users::bigint) AS i;

INSERT INTO orders (id, user_id, total, status, tags, placed_at)
SELECT j,
       u,
       (j * 7919 % 99991) / 100.0,
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + (j + (j - 1) / :users::bigint) % 4],
       CASE j % 3 WHEN 0 THEN '{}'::text[]
                  WHEN 1 THEN ARRAY['gift']
                  ELSE ARRAY['express', 'fragile'] END,
       timestamptz '2024-01-01 00:00:00+00' + make_interval(mins => u::int, secs => j)
FROM generate_series(1, 2 * :users::bigint) AS j,
     LATERAL (SELECT 1 + (j - 1) % :users::bigint AS u) AS owner;

ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);
CREATE INDEX orders_user_id_idx ON orders (user_id);

SELECT setval('users_id_seq', :users::bigint);
SELECT setval('orders_id_seq', 2 * :users::bigint);

COMMIT;

ANALYZE users;
ANALYZE orders;
