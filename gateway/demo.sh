#!/usr/bin/env bash
# tollgate demo: on a fresh Debian 12 machine, installs what is missing, builds the
# gateway, starts a PostgreSQL primary + streaming replica with the sample data
# (config/sample: 1,000,000 users, 2,000,000 orders) and a throwaway Redis
# (tests/redis.sh), starts the gateway with config/example.json and its catalog
# (config/catalog) and "shared_limits" on that Redis, shows a few requests, and
# serves until Ctrl-C, which stops everything and removes the temp folders.
#
# Usage: gateway/demo.sh [--no-wait] [--no-build]
#   --no-wait    exit (and clean up) right after showing the requests; also TG_DEMO_NO_WAIT=1
#   --no-build   use the gateway binary as it is (TG_GATEWAY_BIN, default
#                bazel-bin/gateway/tollgate)
# Environment: TG_SAMPLE_USERS (default 1000000; at least 1: the requests read a
#   user), TG_HTTP_PORT (8080), TG_ADMIN_PORT (9090), TG_PG_PORT (55432),
#   TG_PG_REPLICA_PORT (55433), TG_REDIS_PORT (16379): taken ports are replaced by
#   the next free ones. TG_DEMO_SHARED_LIMITS=0: no Redis, "shared_limits": null
#   (each instance enforces its tenants' limits alone).
# The gateway's log and access log are kept after it stops, in a folder the demo
# names (/tmp/tollgate-demo-logs.*).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/pg.sh
source tests/pg.sh
# shellcheck source=tests/redis.sh
source tests/redis.sh

WAIT=1 BUILD=1 SHARED=${TG_DEMO_SHARED_LIMITS:-1}
[[ ${TG_DEMO_NO_WAIT:-0} == 1 ]] && WAIT=0
[[ $SHARED =~ ^[01]$ ]] || { echo "TG_DEMO_SHARED_LIMITS must be 0 or 1, not '$SHARED'" >&2; exit 2; }
for arg in "$@"; do
    case $arg in
        --no-wait) WAIT=0 ;;
        --no-build) BUILD=0 ;;
        -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: gateway/demo.sh [--no-wait] [--no-build]" >&2; exit 2 ;;
    esac
done

GATEWAY_BIN=${TG_GATEWAY_BIN:-$TG_ROOT/bazel-bin/gateway/tollgate}
RUN_DIR=$(mktemp -d /tmp/tollgate-demo.XXXXXX)
# the logs outlive the demo (RUN_DIR does not): a path the demo prints stays good
LOG_DIR=$(mktemp -d /tmp/tollgate-demo-logs.XXXXXX)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    echo >&2
    if [[ -n $TG_GATEWAY_PID ]]; then
        tg_log "stopping the gateway"
        tg_stop_gateway || true
    fi
    redis_stop || true
    pg_stop || true
    rm -rf "$RUN_DIR"
    if [[ -n $(ls -A "$LOG_DIR" 2>/dev/null) ]]; then
        tg_log "the gateway's logs are kept in $LOG_DIR"
    else
        rmdir "$LOG_DIR" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tg_ensure_packages

if ((BUILD)); then
    tg_log "building the gateway (bazel --batch build //gateway:tollgate)"
    bazel --batch build //gateway:tollgate >"$RUN_DIR/build.log" 2>&1 || {
        grep -E -A5 '^ERROR' "$RUN_DIR/build.log" >&2 || tail -n 40 "$RUN_DIR/build.log" >&2
        tg_die "the build failed"
    }
fi
[[ -x $GATEWAY_BIN ]] || tg_die "no gateway binary at $GATEWAY_BIN"

TG_SAMPLE_USERS=${TG_SAMPLE_USERS:-1000000}
[[ $TG_SAMPLE_USERS =~ ^[0-9]+$ ]] || tg_die "TG_SAMPLE_USERS must be a number, not '$TG_SAMPLE_USERS'"
if ((TG_SAMPLE_USERS < 1)); then
    tg_warn "TG_SAMPLE_USERS=$TG_SAMPLE_USERS loads no users, and the requests below read one: loading 1"
    TG_SAMPLE_USERS=1
fi
pg_start || tg_die "could not start PostgreSQL"
if ((SHARED)); then
    TG_REDIS_PORT=$(tg_pick_port "${TG_REDIS_PORT:-16379}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT")
    redis_start || tg_die "could not start Redis"
fi

TG_HTTP_PORT=$(tg_pick_port "${TG_HTTP_PORT:-8080}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" ${TG_REDIS_DIR:+"$TG_REDIS_PORT"})
TG_ADMIN_PORT=$(tg_pick_port "${TG_ADMIN_PORT:-9090}" "$TG_PG_PORT" "$TG_PG_REPLICA_PORT" "$TG_HTTP_PORT" ${TG_REDIS_DIR:+"$TG_REDIS_PORT"})
CONFIG=$RUN_DIR/config.json
tg_render_config config/example.json "$CONFIG.tmpl"
# the demo keeps an access log in its folder (the example ships with it off), and
# shares its tenants' limits through its Redis (what several instances would do;
# without, the field is left out: null is its default)
SHARED_JSON=null
((SHARED)) && SHARED_JSON=$(jq -cn --arg url "$TG_REDIS_URL" '{redis: $url}')
jq --arg log "$LOG_DIR/access.log" --argjson shared "$SHARED_JSON" \
    '.access_log = $log | if $shared == null then . else .shared_limits = $shared end' "$CONFIG.tmpl" >"$CONFIG" ||
    tg_die "could not write the demo config $CONFIG"

tg_log "starting the gateway: $GATEWAY_BIN --config $CONFIG"
if ! tg_start_gateway "$GATEWAY_BIN" "$CONFIG" "$LOG_DIR/gateway.log"; then
    if ((SHARED)) && grep -q shared_limits "$LOG_DIR/gateway.log"; then
        tg_die "the gateway refused shared_limits (a build without them?); TG_DEMO_SHARED_LIMITS=0 runs the demo without"
    fi
    tg_die "the gateway did not start"
fi
tg_wait_http "http://127.0.0.1:$TG_HTTP_PORT/readyz" 15 200 ||
    tg_warn "GET /readyz is not 200 yet (backends still connecting?)"
# the admin API is shown only once it answers
ADMIN_UP=0
if tg_wait_http "http://127.0.0.1:$TG_ADMIN_PORT/admin/status" 10 200; then
    ADMIN_UP=1
else
    tg_warn "the admin API on port $TG_ADMIN_PORT does not answer (see $LOG_DIR/gateway.log)"
fi

# Ids the sample data holds whatever its size (config/sample/data.sql: users 1..N,
# orders 1..2N, user i's email user<i>@example.com).
USERS=$TG_SAMPLE_USERS
USER_ID=$((USERS >= 42 ? 42 : USERS))
OTHER_ID=$((USERS >= 5 ? 5 : 1))
AFTER_ID=$((USERS > 1000 ? 1000 : USERS / 2))
ORDER_IDS="ids=1&ids=2"
((USERS >= 2)) && ORDER_IDS+="&ids=3"

URL=http://127.0.0.1:$TG_HTTP_PORT
EMAIL="demo-$(date +%s)-$RANDOM@example.com"
JSON="-H 'Content-Type: application/json'"
KEY="-H 'Authorization: Bearer demo-key'"
DEMOS=(
    "curl -s $URL/users/$USER_ID"
    "curl -s --http2-prior-knowledge '$URL/users?limit=3&after_id=$AFTER_ID'"
    "curl -s --http2-prior-knowledge '$URL/users/$OTHER_ID/orders?status=paid'"
    "curl -s '$URL/orders?$ORDER_IDS'"
    "curl -s $KEY $URL/debug/in_recovery"
    "curl -s -X POST $KEY $JSON -d '{\"email\": \"$EMAIL\", \"name\": \"Demo User\"}' $URL/users"
    "curl -s -X POST $KEY $JSON -d '{\"user_id\": $USER_ID, \"total\": 19.99, \"tags\": [\"demo\"]}' $URL/orders"
    "TOK=\$(curl -s -i -X PATCH $KEY $JSON -d '{\"name\": \"Renamed\"}' $URL/users/$OTHER_ID | tr -d '\\r' | sed -n 's/^tollgate-read-after: //Ip'); echo \"Tollgate-Read-After: \$TOK\"; curl -s -H \"Tollgate-Read-After: \$TOK\" $URL/users/$OTHER_ID   # read your write"
    "curl -s -i $URL/users/not-a-number"
    "curl -s -X POST $KEY $JSON -d '{\"email\": \"user1@example.com\", \"name\": \"Dup\"}' $URL/users"
    "curl -s -X POST $JSON -d '{\"email\": \"nokey@example.com\", \"name\": \"No key\"}' $URL/users"
)

cat <<EOF

tollgate is serving on $URL (HTTP/1.1 and h2c)
    config:  $CONFIG  (removed when the demo stops; catalog: $TG_ROOT/config/catalog/)
    log:     $LOG_DIR/gateway.log  (kept after the demo stops)
    primary: $TG_PRIMARY_DSN
    replica: $TG_REPLICA_DSN
    redis:   ${TG_REDIS_URL:-none (TG_DEMO_SHARED_LIMITS=0)}

Try these (each is run once below):
EOF
for cmd in "${DEMOS[@]}"; do
    printf '\n$ %s\n' "$cmd"
    bash -c "$cmd" 2>&1 | head -n 30 || true
    echo
done
cat <<EOF

More: $URL/readyz   $URL/healthz
EOF
if ((ADMIN_UP)); then
    cat <<EOF

The admin API (status, reload, kill switches) is on http://127.0.0.1:$TG_ADMIN_PORT:
    curl -s http://127.0.0.1:$TG_ADMIN_PORT/admin/status
    curl -s -X POST http://127.0.0.1:$TG_ADMIN_PORT/admin/queries/get_user/disable -d '{"retry_after_s": 60, "reason": "demo"}'
    curl -s -i $URL/users/$USER_ID        # 503, Retry-After: 60
    curl -s -X POST http://127.0.0.1:$TG_ADMIN_PORT/admin/queries/get_user/enable
    curl -s -X POST http://127.0.0.1:$TG_ADMIN_PORT/admin/reload    # or: kill -HUP $TG_GATEWAY_PID

Metrics (Prometheus text format) and the access log (one JSON line a request):
    curl -s http://127.0.0.1:$TG_ADMIN_PORT/metrics | grep '^tollgate_requests_total'
    tail -n 3 $LOG_DIR/access.log
    kill -USR1 $TG_GATEWAY_PID    # reopen it after moving it (logrotate)
EOF
    echo "\$ curl -s http://127.0.0.1:$TG_ADMIN_PORT/metrics | grep '^tollgate_requests_total'"
    curl -s "http://127.0.0.1:$TG_ADMIN_PORT/metrics" | grep '^tollgate_requests_total' | head -n 12 || true
    if ((SHARED)); then
        echo
        echo "Shared limits: every instance naming $TG_REDIS_URL shares the tenants' buckets"
        echo "(keys: redis-cli -p $TG_REDIS_PORT --scan --pattern 'tollgate:*'):"
        echo "\$ curl -s http://127.0.0.1:$TG_ADMIN_PORT/admin/status | jq .shared_limits"
        curl -s "http://127.0.0.1:$TG_ADMIN_PORT/admin/status" | jq .shared_limits | head -n 30 || true
    fi
else
    echo
    echo "The access log (one JSON line a request): tail -n 3 $LOG_DIR/access.log"
fi

if ((WAIT)); then
    echo
    tg_log "serving; press Ctrl-C to stop the gateway, PostgreSQL and Redis"
    # returns when the gateway exits by itself (or the trap runs on Ctrl-C)
    wait "$TG_GATEWAY_PID" || true
    TG_GATEWAY_PID=
    tg_warn "the gateway exited; the end of its log:"
    tail -n 20 "$LOG_DIR/gateway.log" >&2
    exit 1
fi
