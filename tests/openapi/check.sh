#!/usr/bin/env bash
# Checks a running gateway's GET /openapi.json with real tools from npm (versions
# pinned in tests/openapi/package-lock.json):
#
#   - @seriousme/openapi-schema-validator: a valid OpenAPI 3.1 document;
#   - @redocly/openapi-core: its lint (recommended rules) finds no error;
#   - every route of the catalog files is an operation named after its query, no
#     `from: "tenant"` parameter and no SQL text is in the document, and a second
#     fetch gives the same bytes;
#   - openapi-typescript generates a typed client holding every route, and the
#     TypeScript compiler (typescript) accepts it with a use of each route.
#
# Usage: tests/openapi/check.sh [URL]      (URL: the gateway, default $TG_URL)
#
# Environment:
#   TG_URL                     the gateway's main listener, e.g. http://127.0.0.1:18080
#   TG_API_KEY                 sent as a Bearer key (the document needs none)
#   TG_OPENAPI_CATALOGS        the catalog folders or files the gateway serves
#                              (default: tests/integration/catalog config/catalog)
#   TG_OPENAPI_NODE_DIR        where the npm packages are installed (default:
#                              ${XDG_CACHE_HOME:-~/.cache}/tollgate/openapi-check), outside
#                              the repository; installed again only when the lock changes,
#                              so later runs need no network
#
# Node.js and npm are installed with apt-get (Debian's nodejs and npm) when missing.
# Prints one line per check and a Criterion-style "Synthesis:" line (tests/run.sh
# counts it); exits non-zero if any check failed or the tools could not be installed.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib.sh
source "$here/../lib.sh"
cd "$TG_ROOT"

url=${1:-${TG_URL:-}}
[[ -n $url ]] || tg_die "usage: tests/openapi/check.sh URL (or set TG_URL)"

# Node.js 18 or later, and npm (Debian 12 has nodejs 18 and npm 9 as separate packages).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    # shellcheck disable=SC2034 # read by tg_ensure_packages
    TG_PACKAGES=(nodejs npm)
    tg_ensure_packages
fi
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 18)) || tg_die "Node.js $(node --version) is too old: 18 or later is needed"

# The pinned packages, installed once per lock into a folder outside the repository.
dir=${TG_OPENAPI_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/openapi-check}
lock_sum=$(sha256sum tests/openapi/package-lock.json | cut -d' ' -f1)
if [[ ! -d $dir/node_modules || $(cat "$dir/.installed" 2>/dev/null || true) != "$lock_sum" ]]; then
    tg_log "installing the npm packages of tests/openapi/package-lock.json into $dir"
    mkdir -p "$dir"
    rm -rf "$dir/node_modules" "$dir/.installed"
    cp tests/openapi/package.json tests/openapi/package-lock.json "$dir/"
    start=$SECONDS
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --cache "$dir/.npm-cache") ||
        tg_die "npm ci failed in $dir"
    echo "$lock_sum" >"$dir/.installed"
    tg_log "npm packages installed in $((SECONDS - start)) s"
fi

# The script runs from the install folder, so that its imports find node_modules there.
cp tests/openapi/check.mjs "$dir/check.mjs"
read -r -a catalogs <<<"${TG_OPENAPI_CATALOGS:-tests/integration/catalog config/catalog}"
for i in "${!catalogs[@]}"; do
    catalogs[i]=$(realpath "${catalogs[i]}")
done
exec node "$dir/check.mjs" "$url" "${catalogs[@]}"
