-- Tables only the integration tests use, loaded after the sample schema.
CREATE TABLE deferred_probe (
    id int PRIMARY KEY,
    ref int REFERENCES deferred_probe (id) DEFERRABLE INITIALLY DEFERRED
);
GRANT SELECT, INSERT, UPDATE, DELETE ON deferred_probe TO tollgate;
