-- used by tests/integration/catalog/results.json (sql_from_file)
SELECT 42 AS answer, $1::text AS echo
