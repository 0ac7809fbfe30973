-- Tables only the integration tests use, loaded after the sample schema.
CREATE TABLE deferred_probe (
    id int PRIMARY KEY,
    ref int REFERENCES deferred_probe (id) DEFERRABLE INITIALLY DEFERRED
);
GRANT SELECT, INSERT, UPDATE, DELETE ON deferred_probe TO tollgate;

-- Exact data: what the gateway stored is read back with libpq and compared.
CREATE TABLE exact_probe (
    id int8 PRIMARY KEY,
    num numeric,
    num10 numeric(50, 10),
    doc_json json,
    doc_jsonb jsonb,
    f8 float8,
    grp int
);
GRANT SELECT, INSERT, UPDATE, DELETE ON exact_probe TO tollgate;

-- Rows scoped to their tenant by a from: "tenant" parameter.
CREATE TABLE tenant_notes (
    id serial PRIMARY KEY,
    owner text NOT NULL,
    note text NOT NULL
);
INSERT INTO tenant_notes (owner, note) VALUES ('alpha', 'a1'), ('alpha', 'a2'), ('beta', 'b1'), ('anonymous', 'n1');
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_notes TO tollgate;
GRANT USAGE ON SEQUENCE tenant_notes_id_seq TO tollgate;

-- A table whose shape changes while the gateway serves it (prepared statements then go stale).
CREATE TABLE schema_probe (id int PRIMARY KEY, a text NOT NULL);
INSERT INTO schema_probe VALUES (1, 'one'), (2, 'two');
GRANT SELECT ON schema_probe TO tollgate;

-- The result cache (tests/integration/cache.c): every execution of cache_probe leaves a
-- WARNING in the server's own log, so the tests count executions in the database.
CREATE FUNCTION cache_probe(k text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'tollgate-cache-probe %', k;
    RETURN k;
END $$;
GRANT EXECUTE ON FUNCTION cache_probe(text) TO tollgate;
CREATE TABLE cache_kv (k text PRIMARY KEY, v text NOT NULL);
GRANT SELECT, INSERT, UPDATE ON cache_kv TO tollgate;

-- Reads sharing a Sync (tests/integration/reads.c): a write among them commits on its own.
CREATE TABLE batch_notes (k text PRIMARY KEY);
GRANT SELECT, INSERT ON batch_notes TO tollgate;

-- A database error whose message and DETAIL quote the value it was called with: the
-- gateway's log must name the error, never the value (tests/integration/backends.c).
CREATE FUNCTION tollgate_raise_secret(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the value is %', v USING DETAIL = 'stored: ' || v, HINT = 'line one' || chr(10) || 'line two';
END $$;
GRANT EXECUTE ON FUNCTION tollgate_raise_secret(text) TO tollgate;

-- REST habits (tests/integration/api.c, rest suite): creates, updates and deletes, keyset pages.
CREATE TABLE rest_items (
    id serial PRIMARY KEY,
    name text NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON rest_items TO tollgate;
GRANT USAGE ON SEQUENCE rest_items_id_seq TO tollgate;

-- Read-your-writes (tests/integration/backends.c, read_after suite): a value set on the
-- primary and read back wherever its token allows.
CREATE TABLE rw_probe (k text PRIMARY KEY, v int NOT NULL);
GRANT SELECT, INSERT, UPDATE ON rw_probe TO tollgate;

-- The overload suite's contention knob (tests/integration/overload.c): its contended read sleeps
-- knob.v seconds for every call of its kind running at once, so its cost grows with concurrency.
CREATE TABLE IF NOT EXISTS knob (id int PRIMARY KEY, v float8 NOT NULL);
INSERT INTO knob VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
GRANT SELECT ON knob TO tollgate;
