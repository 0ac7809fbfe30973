# shellcheck shell=bash
# Shared helpers for tollgate's scripts (tests/run.sh, tests/pg.sh, gateway/demo.sh).
# Source it; it defines functions and a few variables and runs nothing else.
#
#   TG_ROOT            the repository root (derived from this file's location)
#   tg_log / tg_warn / tg_die MSG...
#   tg_ensure_packages         install missing Debian packages (apt-get, once)
#   tg_port_free PORT          true if nothing listens on 127.0.0.1:PORT
#   tg_pick_port PORT [SKIP..] PORT or the next free one, skipping SKIP ports
#   tg_wait_http URL SECONDS [STATUS]   poll URL until it answers (that status)
#   tg_key_hash KEY            "sha256:<hex>" of an API key, as in the config
#   tg_render_config SRC DST   copy a config template with the actual ports/DSNs
#   tg_start_gateway BIN CONFIG LOG / tg_stop_gateway

[[ -n ${TG_LIB_LOADED:-} ]] && return 0
TG_LIB_LOADED=1

# shellcheck disable=SC2034 # used by the scripts that source this
TG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

tg_log()  { printf '[tollgate] %s\n' "$*" >&2; }
tg_warn() { printf '[tollgate] warning: %s\n' "$*" >&2; }

# The end of a script's cleanup: removes the work folder DIR unless KEEP is 1 (then
# says where it is), and exits with RC. Usage: tg_finish_work DIR KEEP RC
tg_finish_work() {
    if [[ $2 == 1 ]]; then
        tg_log "kept $1"
    else
        rm -rf "$1"
    fi
    exit "$3"
}

# Waits (at most 15 s) until the gateway at URL reports every backend up (a replica
# with a measured lag: it takes reads only then) and connected, three answers in a row
# (from whichever thread answers). Returns 1, after a warning, if that never happens.
tg_wait_backends() {
    local url=$1 deadline=$((SECONDS + 15)) ok=0 ready=
    while ((SECONDS < deadline && ok < 3)); do
        ready=$(curl -s --max-time 2 "$url/readyz" || true)
        if [[ $(jq -r '[.backends[] | .state == "up" and .connections.connecting == 0 and .connections.ready > 0
                        and (.role == "primary" or .lag_ms != null)] | all' <<<"$ready" 2>/dev/null) == true ]]; then
            ok=$((ok + 1))
        else
            ok=0
        fi
        sleep 0.1
    done
    ((ok == 3)) && return 0
    tg_warn "$url: not every backend is up and connected after 15 s: $ready"
    return 1
}

# Runs FUNCTION on exit, Ctrl-C or TERM (exiting 130 or 143 through it).
# shellcheck disable=SC2064 # the function name is meant to be expanded now
tg_trap_cleanup() {
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
tg_die()  { printf '[tollgate] error: %s\n' "$*" >&2; exit 1; }

# Dies unless each named variable holds a positive integer; the message names it as
# PREFIX + name (the benchmarks' settings are BENCH_<name>). Usage: tg_positive_ints PREFIX VAR...
tg_positive_ints() {
    local prefix=$1 v
    shift
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || tg_die "$prefix$v must be a positive integer, not '${!v}'"
    done
}

# ---------------------------------------------------------------------------------
# Packages

# Debian packages the project needs: build (bazel-bootstrap and the -dev libraries),
# PostgreSQL 15 for tests and the demo, curl/nghttp2-client for HTTP checks (and
# zlib1g-dev to inflate gzip answers), wrk, pgbouncer and jq for the benchmarks, and
# prometheus (its server and promtool) for the observability tests.
TG_PACKAGES=(bazel-bootstrap libh2o-evloop-dev libjansson-dev libjemalloc-dev
    libcriterion-dev libpq-dev postgresql libcurl4-openssl-dev zlib1g-dev nghttp2-client
    curl wrk pgbouncer prometheus jq)

_tg_pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Installs whichever of TG_PACKAGES are missing ("apt-get update" once, then one
# "apt-get install -y"). Does nothing (and needs no network) when all are there.
# The package install must not start Debian's own PostgreSQL cluster (port 5432):
# while it runs, a policy-rc.d that forbids starting services is put in place unless
# one exists already.
tg_ensure_packages() {
    local missing=() p
    for p in "${TG_PACKAGES[@]}"; do
        _tg_pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0

    tg_log "installing missing packages: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || tg_die "not root and no sudo: install ${missing[*]}"
        sudo=(sudo)
    fi
    local policy=/usr/sbin/policy-rc.d ours=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        ours=1
    fi
    local rc=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if ((rc == 0)); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" || rc=$?
    fi
    ((ours)) && "${sudo[@]}" rm -f "$policy"
    ((rc == 0)) || tg_die "apt-get failed (exit $rc) installing: ${missing[*]}"
    for p in "${missing[@]}"; do
        _tg_pkg_installed "$p" || tg_die "package $p is still not installed"
    done
}

# ---------------------------------------------------------------------------------
# Ports and HTTP

# True when nothing accepts connections on 127.0.0.1:PORT (nor is bound there, as
# far as `ss` can tell when it is installed).
tg_port_free() {
    local port=$1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1
    fi
    if command -v ss >/dev/null; then
        [[ -z $(ss -Htln "( sport = :$port )" 2>/dev/null) ]] || return 1
    fi
    return 0
}

# Prints PORT if it is free, else the next free port above it; ports listed after
# PORT are never chosen (ones already picked for something else).
tg_pick_port() {
    local port=$1 skip=("${@:2}") tries=0 s taken
    while ((tries < 200)); do
        taken=0
        for s in "${skip[@]}"; do [[ $s == "$port" ]] && taken=1; done
        if ((!taken)) && ((port < 65536)) && tg_port_free "$port"; then
            echo "$port"
            return 0
        fi
        port=$((port + 1))
        ((port >= 65536)) && port=20000
        tries=$((tries + 1))
    done
    tg_die "no free port found near $1"
}

# Polls URL (HTTP/1.1) until it answers, or with the given status when one is named.
# Returns 1 after SECONDS.
tg_wait_http() {
    local url=$1 seconds=$2 want=${3:-} deadline code
    deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || code=000
        if [[ $code != 000 ]] && [[ -z $want || $code == "$want" ]]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# The config's form of an API key: "sha256:" and the hex SHA-256 of the key.
tg_key_hash() {
    printf 'sha256:%s\n' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"
}

# ---------------------------------------------------------------------------------
# Config templates

# DIR/PATH without "." and ".." (keeps a trailing slash: "catalog/" names a folder).
_tg_abspath() {
    local p
    p=$(realpath -m "$1/$2")
    [[ $2 == */ ]] && p+=/
    printf '%s' "$p"
}

# Writes DST from the config template SRC (config/example.json or
# tests/integration/config.json) with the actual addresses:
#   - the default primary/replica DSNs (ports 55432/55433) become TG_PRIMARY_DSN /
#     TG_REPLICA_DSN;
#   - "port": 8080 becomes TG_HTTP_PORT, "port": 9090 becomes TG_ADMIN_PORT;
#   - relative paths on the template's "catalog" line become absolute (relative to
#     SRC's folder), so DST can live anywhere. The template keeps "catalog" on one line.
tg_render_config() {
    local src=$1 dst=$2 dir line head rest out
    dir=$(cd "$(dirname "$src")" && pwd)
    local def_primary='host=127.0.0.1 port=55432 dbname=app user=tollgate'
    local def_replica='host=127.0.0.1 port=55433 dbname=app user=tollgate'
    : "${TG_PRIMARY_DSN:?}" "${TG_REPLICA_DSN:?}" "${TG_HTTP_PORT:?}" "${TG_ADMIN_PORT:?}"
    {
        while IFS= read -r line || [[ -n $line ]]; do
            line=${line//"$def_primary"/"$TG_PRIMARY_DSN"}
            line=${line//"$def_replica"/"$TG_REPLICA_DSN"}
            line=${line//'"port": 8080'/"\"port\": $TG_HTTP_PORT"}
            line=${line//'"port": 9090'/"\"port\": $TG_ADMIN_PORT"}
            if [[ $line =~ ^([[:space:]]*\"catalog\"[[:space:]]*:)(.*)$ ]]; then
                head=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]} out=
                # prefix every quoted string that is not an absolute path
                while [[ $rest =~ ^([^\"]*)\"([^\"]*)\"(.*)$ ]]; do
                    if [[ ${BASH_REMATCH[2]} == /* ]]; then
                        out+="${BASH_REMATCH[1]}\"${BASH_REMATCH[2]}\""
                    else
                        out+="${BASH_REMATCH[1]}\"$(_tg_abspath "$dir" "${BASH_REMATCH[2]}")\""
                    fi
                    rest=${BASH_REMATCH[3]}
                done
                line="$head$out$rest"
            fi
            printf '%s\n' "$line"
        done <"$src"
    } >"$dst"
}

# ---------------------------------------------------------------------------------
# The gateway process

TG_GATEWAY_PID=

# Starts BIN --config CONFIG in the background, output to LOG; sets TG_GATEWAY_PID.
# Waits for GET /healthz on TG_HTTP_PORT (TG_GATEWAY_START_S seconds, default 30) and
# fails (printing the log) if it does not come up or the process exits.
tg_start_gateway() {
    local bin=$1 config=$2 log=$3 deadline code
    [[ -x $bin ]] || { tg_warn "gateway binary $bin is missing"; return 1; }
    "$bin" --config "$config" >"$log" 2>&1 &
    TG_GATEWAY_PID=$!
    deadline=$((SECONDS + ${TG_GATEWAY_START_S:-30}))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$TG_GATEWAY_PID" 2>/dev/null; then
            wait "$TG_GATEWAY_PID" && code=0 || code=$?
            TG_GATEWAY_PID=
            tg_warn "the gateway exited (status $code) before serving; its log:"
            sed 's/^/    /' "$log" >&2
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:$TG_HTTP_PORT/healthz" 2>/dev/null) || code=000
        [[ $code == 200 ]] && return 0
        sleep 0.2
    done
    tg_warn "the gateway did not answer GET /healthz on port $TG_HTTP_PORT; its log:"
    sed 's/^/    /' "$log" >&2
    tg_stop_gateway
    return 1
}

# Stops the gateway started by tg_start_gateway: SIGTERM, then SIGKILL after
# TG_GATEWAY_STOP_S seconds (default 15). Returns the gateway's exit status
# (137 when it had to be killed), 0 if none was running.
tg_stop_gateway() {
    local pid=$TG_GATEWAY_PID deadline rc=0
    [[ -n $pid ]] || return 0
    TG_GATEWAY_PID=
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${TG_GATEWAY_STOP_S:-15}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        tg_warn "gateway (pid $pid) did not stop on SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------------------------
# Benchmark loads (bench/reload.sh, bench/observe.sh)

# Writes 200,000 URLs BASE/users/<random id in 1..USERS> to FILE (awk's srand(SEED)).
tg_random_user_uris() { # FILE SEED BASE USERS
    awk -v n="$4" -v seed="$2" -v base="$3" \
        'BEGIN { srand(seed); for (i = 0; i < 200000; i++) printf "%s/users/%d\n", base, 1 + int(rand() * n) }' >"$1"
}

# h2load -cCLIENTS -mSTREAMS for SECS over the URLs of URIFILE (h2c), its output in
# OUT; prints "req/s done bad" (bad: failed, errored, timed out, or not 2xx).
tg_h2load_uris() { # URIFILE SECS CLIENTS STREAMS OUT
    local out=$5
    timeout -k 5 $(($2 + 30)) h2load -c "$3" -m "$4" -D "$2" -i "$1" >"$out" 2>&1 ||
        { sed 's/^/    /' "$out" >&2; tg_die "h2load failed"; }
    local rps ndone failed redirects
    rps=$(awk '/^finished in/ { print $4 }' "$out")
    # requests: T total, S started, D done, OK succeeded, F failed (errored, timeouts and 4xx/5xx included), ...
    read -r ndone failed <<<"$(awk '/^requests:/ { print $6, $10 }' "$out")"
    redirects=$(awk '/^status codes:/ { print $5 }' "$out")
    echo "$rps $ndone $((failed + redirects))"
}

# Sends METHOD URL every EVERY_MS for SECS from one curl process (its --rate, so the
# load generator spends little on it); prints "ok not-ok" (200s and the rest).
tg_curl_every() { # METHOD URL EVERY_MS SECS WORKDIR
    local n=$(($4 * 1000 / $3)) i
    for ((i = 0; i < n; ++i)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$2"; done >"$5/curl-every.cfg"
    curl -s -X "$1" --rate "$((60000 / $3))/m" -w '%{http_code}\n' -K "$5/curl-every.cfg" >"$5/curl-every.codes" || true
    awk '$1 == 200 { ok++ } $1 != 200 { bad++ } END { print ok + 0, bad + 0 }' "$5/curl-every.codes"
}

# The benchmarks' common start (bench/reload.sh, observe.sh, cache.sh): a work folder
# (WORK), a cleanup on exit that runs the script's own bench_cleanup if it has one,
# then stops the gateway of TG_GATEWAY_PID and PostgreSQL and removes the folder
# (BENCH_KEEP=1 keeps it), the packages, h2load and jq, and the gateway built (GW_BIN;
# BENCH_GATEWAY_BIN runs another build).
tg_bench_start() {
    WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
    tg_trap_cleanup _tg_bench_cleanup
    tg_ensure_packages
    command -v h2load >/dev/null || tg_die "h2load is missing (apt-get install nghttp2-client)"
    command -v jq >/dev/null || tg_die "jq is missing (apt-get install jq)"
    tg_log "building the gateway"
    bazel --batch build //gateway:tollgate >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; tg_die "build failed"; }
    GW_BIN=${BENCH_GATEWAY_BIN:-$TG_ROOT/bazel-bin/gateway/tollgate}
}

_tg_bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ $(type -t bench_cleanup) == function ]] && bench_cleanup
    tg_stop_gateway >/dev/null 2>&1 || true
    pg_stop >/dev/null 2>&1 || true
    tg_finish_work "$WORK" "${BENCH_KEEP:-0}" "$rc"
}

