-- pgbench script for bench/read.sh: the SQL of the catalog's get_user query
-- (config/catalog/users.json) with a uniform random id; read.sh checks that the two
-- still match. Run as: pgbench -M prepared -D users=N -f bench/get_user.sql
\set id random(1, :users)
SELECT id, email, name, settings, created_at, active FROM users WHERE id = :id;
