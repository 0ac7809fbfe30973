// The checks of tests/openapi/check.sh (run from the folder the npm packages are in):
//   node check.mjs URL CATALOG...
// URL is the gateway; each CATALOG is a catalog file or a folder of them, as the
// gateway's config names them. One line per check, then a Criterion-style synthesis.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [url, ...catalogs] = process.argv.slice(2);
const results = [];

async function check(name, fn) {
  try {
    const detail = await fn();
    results.push(true);
    console.log(`ok   ${name}${detail ? ` (${detail})` : ""}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}\n     ${String(e.message ?? e).split("\n").join("\n     ")}`);
  }
}

// `message` may be a function, called only when the check fails
function assert(cond, message) {
  if (!cond) throw new Error(typeof message === "function" ? message() : message);
}

// The catalog as the gateway reads it: folders give their *.json files not starting with '.'.
function catalogFiles(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => f.endsWith(".json") && !f.startsWith(".") && f.length > 5)
    .sort()
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile());
}

const queries = [];
for (const file of [...new Set(catalogs.flatMap(catalogFiles))]) {
  for (const q of JSON.parse(readFileSync(file, "utf8")).queries) {
    const [method, path] = q.route.split(" ");
    const sql = q.sql !== undefined ? [q.sql].flat().join("\n") : readFileSync(join(dirname(file), q.sql_file), "utf8");
    const tenant = (q.params ?? []).filter((p) => p.from === "tenant").map((p) => p.name);
    queries.push({ name: q.name, method: method.toLowerCase(), path, sql, tenant });
  }
}

const headers = process.env.TG_API_KEY ? { Authorization: `Bearer ${process.env.TG_API_KEY}` } : {};
let text = "";
let doc = null;

await check("GET /openapi.json answers 200 application/json with a JSON object", async () => {
  const r = await fetch(`${url}/openapi.json`, { headers });
  assert(r.status === 200, `status ${r.status}`);
  assert((r.headers.get("content-type") ?? "").startsWith("application/json"), `content-type ${r.headers.get("content-type")}`);
  text = await r.text();
  doc = JSON.parse(text);
  assert(doc && typeof doc === "object" && !Array.isArray(doc), "not an object");
  return `${text.length} bytes, ${Object.keys(doc.paths ?? {}).length} paths`;
});

await check("a second fetch gives the same bytes", async () => {
  const r = await fetch(`${url}/openapi.json`, { headers });
  assert((await r.text()) === text, "the document changed between two fetches");
});

await check("valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)", async () => {
  const v = new Validator();
  const res = await v.validate(JSON.parse(text));
  assert(res.valid, () => JSON.stringify(res.errors, null, 1).slice(0, 4000));
  assert(v.version === "3.1", `version ${v.version}`);
  assert(doc.openapi === "3.1.0", `openapi ${doc.openapi}`);
});

await check("Redocly lint, recommended rules: no error (@redocly/openapi-core)", async () => {
  const config = await createConfig({ extends: ["recommended"] });
  const problems = await lintFromString({ source: text, absoluteRef: "openapi.json", config });
  const errors = problems.filter((p) => p.severity === "error");
  const describe = (p) => `${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer ?? "?"}`;
  assert(errors.length === 0, errors.slice(0, 20).map(describe).join("\n"));
  const warnings = problems.filter((p) => p.severity === "warn");
  return `${warnings.length} warnings${warnings.length ? ": " + [...new Set(warnings.map((p) => p.ruleId))].join(", ") : ""}`;
});

await check("every catalog route is an operation named after its query", async () => {
  assert(queries.length > 0, "no query in the catalogs given");
  const missing = queries.filter((q) => doc.paths?.[q.path]?.[q.method]?.operationId !== q.name);
  assert(missing.length === 0, missing.map((q) => `${q.method.toUpperCase()} ${q.path} (${q.name})`).join("\n"));
  const ops = Object.values(doc.paths).flatMap((item) => Object.values(item)).filter((op) => op.operationId);
  const builtins = ops.length - queries.length;
  assert(builtins === 3, `${ops.length} operations for ${queries.length} queries and 3 built-ins`);
  return `${queries.length} routes`;
});

await check("no from: \"tenant\" parameter is in the document", async () => {
  const found = [];
  for (const q of queries) {
    const op = doc.paths[q.path][q.method];
    const names = [
      ...(op.parameters ?? []).map((p) => p.name),
      ...Object.keys(op.requestBody?.content?.["application/json"]?.schema?.properties ?? {}),
    ];
    for (const t of q.tenant) if (names.includes(t)) found.push(`${q.name}: ${t}`);
  }
  assert(found.length === 0, found.join("\n"));
  return `${queries.filter((q) => q.tenant.length).length} queries with one`;
});

await check("no SQL text is in the document", async () => {
  assert(text.length > 0, "no document");
  const leaks = [];
  for (const q of queries) {
    if (text.includes(q.sql) || text.includes(JSON.stringify(q.sql).slice(1, -1))) leaks.push(`${q.name}: the whole statement`);
    for (const line of q.sql.split("\n").map((l) => l.trim()).filter((l) => l.length >= 16))
      if (text.includes(line) || text.includes(JSON.stringify(line).slice(1, -1))) leaks.push(`${q.name}: ${line}`);
  }
  assert(leaks.length === 0, leaks.join("\n"));
});

const work = mkdtempSync(join(tmpdir(), "tollgate-openapi-"));
let client = "";

await check("openapi-typescript generates a client with every route", async () => {
  client = astToString(await openapiTS(text));
  writeFileSync(join(work, "api.ts"), client);
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const missing = [];
  for (const q of queries) {
    // "/users/{id}": { ... get: operations["get_user"]; ... }
    const item = new RegExp(`\\n    "${escape(q.path)}": \\{[\\s\\S]*?\\n    \\};`).exec(client);
    if (!item || !item[0].includes(`${q.method}: operations["${q.name}"];`)) missing.push(`${q.method.toUpperCase()} ${q.path}`);
  }
  assert(missing.length === 0, missing.join("\n"));
  return `${client.length} bytes of TypeScript`;
});

await check("the generated client type-checks with a call of every route (tsc)", async () => {
  // each route's operation must exist and not be `never` (a method the path lacks)
  const lines = [
    'import type { paths, operations } from "./api";',
    "type Is<T> = [T] extends [never] ? false : [T] extends [undefined] ? false : true;",
  ];
  queries.forEach((q, i) => {
    lines.push(`const r${i}: Is<paths[${JSON.stringify(q.path)}][${JSON.stringify(q.method)}]> = true;`);
    lines.push(`const o${i}: Is<operations[${JSON.stringify(q.name)}]> = r${i};`);
    lines.push(`export { o${i} };`);
  });
  writeFileSync(join(work, "routes.ts"), lines.join("\n") + "\n");
  const program = ts.createProgram([join(work, "api.ts"), join(work, "routes.ts")], {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, skipLibCheck: true, types: [],
  });
  const diags = ts.getPreEmitDiagnostics(program);
  const format = (d) => `${d.file ? d.file.fileName.split("/").pop() + ": " : ""}${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  assert(diags.length === 0, diags.slice(0, 20).map(format).join("\n"));
  return `typescript ${ts.version}`;
});

rmSync(work, { recursive: true, force: true });
const passing = results.filter(Boolean).length, failing = results.length - passing;
console.log(`[====] Synthesis: Tested: ${results.length} | Passing: ${passing} | Failing: ${failing} | Crashing: 0`);
process.exit(failing === 0 ? 0 : 1);
