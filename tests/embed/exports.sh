#!/usr/bin/env bash
# What libtollgate.so exports is exactly the API include/tollgate.h declares (TG_API)
# and the three h2o functions gateway/conn.c interposes, and libtollgate.lds says so.
#
# Usage: exports.sh LIBTOLLGATE_SO LIBTOLLGATE_LDS TOLLGATE_H   (//tests/embed:exports passes them)
set -euo pipefail
so=$1 lds=$2 header=$3
interposed="h2o_http2_handle_upgrade h2o_socket_close h2o_socket_read_start"

# defined, global or weak, in the dynamic symbol table (a TLS variable's local entry is not exported)
exported=$(nm -D --defined-only --extern-only "$so" | awk '{ print $3 }' | sed 's/@.*//' | sort -u)
# the names between "global:" and "local:" in the version script
listed=$(sed -n '/global:/,/local:/p' "$lds" | grep -Eo '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;' | tr -d ' ;' | sort -u)
# every function the header marks TG_API
declared=$(grep -E '^TG_API ' "$header" | grep -Eo '\btg_[a-z0-9_]+\(' | tr -d '(' | sort -u)
expected=$(printf '%s\n' $declared $interposed | sort -u)

fail=0
compare() { # WHAT A B: A and B are the same list
    if [[ $2 != "$3" ]]; then
        echo "FAIL: $1"
        diff <(echo "$2") <(echo "$3") | sed 's/^/    /'
        fail=1
    else
        echo "ok: $1 ($(echo "$2" | wc -l) symbols)"
    fi
}
[[ -n $declared ]] || { echo "FAIL: no TG_API function found in $header"; exit 1; }
compare "the .so exports (<) what tollgate.h declares and conn.c interposes (>)" "$exported" "$expected"
compare "libtollgate.lds lists (<) what tollgate.h declares and conn.c interposes (>)" "$listed" "$expected"
# and nothing of the library's own: no internal tg_ symbol, no h2o, libpq or jansson symbol defined in it
leaked=$(echo "$exported" | grep -Ev "^($(echo $declared $interposed | tr ' ' '|'))\$" || true)
[[ -z $leaked ]] || { echo "FAIL: exported beyond the API: $leaked"; fail=1; }
exit $fail
