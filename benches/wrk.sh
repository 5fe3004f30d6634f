#!/usr/bin/env bash
# Side-by-side load test: this gateway vs nginx as a reverse proxy, both in
# front of the same three fast static backends (a separate nginx instance).
#
# One run does everything: installs wrk/nginx if missing (apt, as root),
# builds the release binary, starts backends and proxies on 127.0.0.1 only,
# measures in interleaved rounds (median reported), measures RSS with 10,000
# idle keep-alive clients, and prints a markdown table. It kills only the
# PIDs it started (trap on exit). Not for CI: it takes ~8 minutes.
#
# Configurations:
#   1w pinned   : each proxy 1 worker on CPU 1 (taskset), wrk + backends on CPU 0
#   2w unpinned : each proxy 2 workers, nothing pinned
# Scenarios (wrk, 1 thread):
#   ka50  : keep-alive, 50 connections        (throughput)
#   ka1   : keep-alive, 1 connection          (latency)
#   close : 50 connections, Connection: close (a new connection per request)
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3),
# IDLE_CONNS (idle keep-alive clients held per measurement, a list:
# default "1000 10000"; RssAnon and VmRSS growth per connection), SKIP_BUILD=1, SKIP_IDLE=1, OUT (results dir),
# CONFIGS (default "1w 2w"), ROUTES (default 0: no routes, one pool, the
# target forwarded as sent; N > 0: N routes, N-1 decoys with hosts,
# wildcards and prefixes plus the `/api` route the load hits, and nginx gets
# the same N `location`s),
# BIN_BEFORE (path of an older gateway binary: it runs as a fourth target,
# "before", interleaved with the others in the same rounds, and the report
# adds an after/before table, so a refactor is compared under the same load),
# BEFORE_ROUTES (the "before" target's route count, default ROUTES: with
# BIN_BEFORE set to this build, ROUTES=10 BEFORE_ROUTES=0 compares routed
# with single-pool in the same rounds),
# AUTH (default 0; 1: the `/api` route the load hits needs an API key, 101
# consumers are configured, and every wrk request carries
# `X-API-Key: k-bench-alice`; nginx gets the equivalent `map` of the keys,
# a 401 for an unknown one, the key header cleared and `X-Consumer` set;
# implies ROUTES >= 1; the idle clients send the key too),
# BEFORE_AUTH (the "before" target's AUTH, default
# AUTH: BIN_BEFORE=this build AUTH=1 BEFORE_AUTH=0 prices the auth stage),
# TLS (default 0; 1: both proxies also listen with TLS, the same ECDSA
# P-256 certificate made here with openssl, and two scenarios are added:
# tls_ka50, keep-alive over TLS with 50 connections, and tls_close, a new
# TLS connection (a full handshake: wrk does not resume sessions) per
# request; SCENARIOS picks the scenarios, default "ka50 ka1 close" plus
# the TLS ones; the opt-in scenarios below are added only when named there).
#
# SHADOW (default empty: off; e.g. "all" or '["sliding-log"]': the value of
# the main gateway's `rate_limit.shadow`), BEFORE_SHADOW (the "before"
# target's, default SHADOW: BIN_BEFORE=this build SHADOW=all BEFORE_SHADOW=
# prices every shadow limiter against none, in the same rounds),
# TRACE (default 0; 1: the main gateway has `"trace": {"enabled": true}`,
# and wrk's requests do not ask for a trace), BEFORE_TRACE (default TRACE:
# TRACE=1 BEFORE_TRACE=0 prices tracing enabled but not asked for),
#
# BIN (the gateway binary, default $ROOT/target/release/api-gateway; with
# SKIP_BUILD=1 it may come from another CARGO_TARGET_DIR),
# FULL (default 0; 1: everything on at once, see "FULL=1" below; implies
# ROUTES=10 (or more if ROUTES says so) and AUTH=1), BEFORE_FULL (the
# "before" target's FULL, default FULL: FULL=1 BEFORE_FULL=0 prices the
# header rules, the access log file and nginx's limit_req against the same
# 10 routes with auth).
#
# Opt-in scenarios (name them in SCENARIOS, e.g. SCENARIOS="ka50 churn
# overload"; never in the default list). Each runs against its own pair of
# proxies (a gateway and an nginx, same workers and pinning as the main pair,
# started beside it), so the main targets' configs do not change when they
# are selected. They inherit ROUTES, AUTH and FULL; "before" (BIN_BEFORE)
# skips them.
#   churn    : keep-alive, 50 connections; a wrk Lua script ($OUT/churn.lua)
#              sends `X-Client-Key: k<N>`, N cycling over CHURN_KEYS (default
#              100000) values. Gateway: the rate limit is keyed by that
#              header ("key": "header:X-Client-Key") with "max_keys"
#              CHURN_MAX_KEYS (default 10000, rounded up to 16384 slots), a
#              token bucket of capacity 100000 refilling 0.01/s: it never
#              denies (a key would need 100,000 requests), but a slot stays
#              unlike a fresh key's for 100 s after its last request, so every
#              displacement is a counted eviction (the table's eviction path,
#              gateway_ratelimit_evictions_total, read from the pair's admin
#              port CHURN_ADMIN_PORT=18102 and printed after the table).
#              nginx: `limit_req_zone $http_x_client_key zone=churn:1m
#              rate=1000000r/s` + `limit_req zone=churn burst=1000000 nodelay`
#              (a 1m zone holds ~8-16k states; when it is full nginx frees the
#              least recently used states by force, and when that fails it
#              answers 503 and logs "could not allocate node", counted too).
#              "direct" is the backend with the same script (no limiter).
#              Reported as a row of the main table.
#   overload : backends slower than the offered load. Three python3
#              ThreadingHTTPServer backends ($OUT/slow.py, ports 18121-18123,
#              started only for this scenario) sleep SLOW_MS (default 20) ms
#              per request and answer the same JSON body (HTTP/1.1 keep-alive,
#              Content-Length). wrk -t1 -c OVERLOAD_CONNS (default 400) for
#              DURATION with a Lua `response` hook ($OUT/overload.lua) that
#              counts statuses. Gateway: "max_inflight_per_backend"
#              OVERLOAD_CAP (default 16) and "queue": {"max": OVERLOAD_QUEUE
#              (default 100), "timeout_ms": OVERLOAD_QUEUE_MS (default 100)}:
#              beyond the cap a request waits in the bounded queue, then gets
#              503 + Retry-After. nginx: the same servers with
#              `max_conns=OVERLOAD_CAP` and a shared `zone` (nginx OSS has no
#              queue: beyond max_conns it answers 502 at once; its error_log
#              is at `crit` for this pair so that it does not write one "no
#              live upstreams" line per refused request, the gateway logs none
#              either). Recorded per run: req/s (every answer), 2xx/s, p50,
#              p99 and max latency (all answers), the count of each status and
#              socket errors, the proxy's peak RSS during the run (VmHWM reset
#              through /proc/PID/clear_refs before it, summed over nginx's
#              processes), the gateway's queue rejections (full / timeout,
#              from its admin port OVERLOAD_ADMIN_PORT=18112) and, from a
#              python probe sending one keep-alive request every 10 ms beside
#              wrk ($OUT/probe.py), the latency of 503/502 answers and of 2xx
#              answers separately. Also a gateway check that should read
#              0 / 0 / 0 / 0: failures charged to the backends' circuits
#              during the run, open circuits, and requests in flight and
#              queued 0.5 s after it (a leaked slot or permit shows here).
#              Its own table; no "direct" target.
# The scenario gateways have an admin port (for /metrics; the main gateway
# has none): one more thread, idle during the runs.
# Ports: backends 18081-18083, nginx 18090, gateway 18091, before 18092,
# TLS +4; churn pair: nginx 18100, gateway 18101; overload pair: nginx
# 18110, gateway 18111; slow backends 18121-18123; everything on 127.0.0.1.
#
# The gateway runs its full pipeline: logger (access_log "off", the same as
# nginx's `access_log off`), cors, rate-limit (token bucket that never
# denies), circuit-breaker, round-robin proxy with pooled upstreams.
#
# FULL=1: the gateway with everything a production route would have on,
# against nginx configured to do the same work. What maps to what:
#   routes          10 routes (9 decoys + `/api`)     10 `location`s (ROUTES=10)
#   auth            `/api` needs X-API-Key, 101       `map $http_x_api_key`, 401 for
#                   consumers (AUTH=1)                an unknown key, the key header
#                                                     cleared, X-Consumer set
#   request rules   `/api`: "request_headers":        proxy_set_header X-Route api;
#                   {"set": {"X-Route": "api"},       proxy_set_header X-Debug "";
#                    "remove": ["X-Debug"]}           (wrk sends `X-Debug: 1`)
#   response rules  `/api`: "response_headers":       add_header X-Frame-Options DENY;
#                   {"set": {"X-Frame-Options":       proxy_hide_header X-Powered-By;
#                    "DENY"}, "remove":               (with FULL the backends send
#                    ["X-Powered-By"]}                `X-Powered-By: bench-backend`)
#   rate limit      token bucket keyed by "ip",       limit_req_zone $binary_remote_addr
#                   capacity and refill 1e9 (the      zone=perip:1m rate=1000000r/s;
#                   default config's, never denies)   limit_req zone=perip
#                                                     burst=1000000 nodelay (never denies)
#   access log      "access_log": "$OUT/logs/gw-      access_log $OUT/logs/nginx-PORT.log
#                   PORT.log" (buffered 32 KiB per    with `combined` + $request_time
#                   worker, flushed every 50 ms)      $upstream_addr, buffer=32k flush=50ms
# Both logs are counted (lines against wrk's requests, in the log output) and
# truncated after every run, so they do not fill the disk. With churn, the
# churn pair keys its one limiter by X-Client-Key instead (as above).
#
# Examples:
#   FULL=1 benches/wrk.sh                              # everything on, vs nginx
#   FULL=1 BEFORE_FULL=0 BIN_BEFORE=target/release/api-gateway CONFIGS=1w \
#     SKIP_IDLE=1 benches/wrk.sh                       # the price of FULL's extras
#   SCENARIOS="ka50 churn" CONFIGS=1w SKIP_IDLE=1 benches/wrk.sh
#   SCENARIOS=overload SKIP_IDLE=1 benches/wrk.sh
#   BIN=/elsewhere/release/api-gateway SKIP_BUILD=1 benches/wrk.sh

set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-1000 10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/gw-wrk.XXXXXX)}
mkdir -p "$OUT"
BIN=${BIN:-$ROOT/target/release/api-gateway}
CPU_PROXY=${CPU_PROXY:-1}
CPU_LOAD=${CPU_LOAD:-0}

BACKEND_PORTS=(18081 18082 18083)
NGINX_PORT=18090
GW_PORT=18091
BEFORE_PORT=18092
BIN_BEFORE=${BIN_BEFORE:-}
CONFIGS=${CONFIGS:-1w 2w}
ROUTES=${ROUTES:-0}
TLS=${TLS:-0}
NGINX_TLS_PORT=18094
if [ "$TLS" = 1 ]; then
    SCENARIOS=${SCENARIOS:-ka50 ka1 close tls_ka50 tls_close}
else
    SCENARIOS=${SCENARIOS:-ka50 ka1 close}
fi
AUTH=${AUTH:-0}
FULL=${FULL:-0}
if [ "$FULL" = 1 ]; then
    AUTH=1
    if [ "$ROUTES" -lt 10 ]; then ROUTES=10; fi
fi
BEFORE_FULL=${BEFORE_FULL:-$FULL}
BEFORE_AUTH=${BEFORE_AUTH:-$AUTH}
BEFORE_ROUTES=${BEFORE_ROUTES:-$ROUTES}
SHADOW=${SHADOW:-}
TRACE=${TRACE:-0}
BEFORE_TRACE=${BEFORE_TRACE:-$TRACE}
BEFORE_SHADOW=${BEFORE_SHADOW-$SHADOW}
if [ "$BEFORE_FULL" = 1 ]; then
    BEFORE_AUTH=1
    if [ "$BEFORE_ROUTES" -lt 10 ]; then BEFORE_ROUTES=10; fi
fi
if [ "$AUTH" = 1 ] && [ "$ROUTES" = 0 ]; then ROUTES=1; fi
BENCH_KEY=k-bench-alice
KEY_HEADER=()
if [ "$AUTH" = 1 ] || [ "$BEFORE_AUTH" = 1 ]; then KEY_HEADER=(-H "X-API-Key: $BENCH_KEY"); fi
# Every wrk request's extra headers: the key, and with FULL the header the
# `/api` route's request rule removes.
WRK_HEADERS=("${KEY_HEADER[@]}")
if [ "$FULL" = 1 ] || [ "$BEFORE_FULL" = 1 ]; then WRK_HEADERS+=(-H "X-Debug: 1"); fi

# The opt-in scenarios and their pairs of proxies.
has_scenario() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
CHURN_KEYS=${CHURN_KEYS:-100000}
CHURN_MAX_KEYS=${CHURN_MAX_KEYS:-10000}
CHURN_NGINX_PORT=18100
CHURN_GW_PORT=18101
CHURN_ADMIN_PORT=18102
SLOW_PORTS=(18121 18122 18123)
SLOW_MS=${SLOW_MS:-20}
OVERLOAD_CONNS=${OVERLOAD_CONNS:-400}
OVERLOAD_CAP=${OVERLOAD_CAP:-16}
OVERLOAD_QUEUE=${OVERLOAD_QUEUE:-100}
OVERLOAD_QUEUE_MS=${OVERLOAD_QUEUE_MS:-100}
OVERLOAD_NGINX_PORT=18110
OVERLOAD_GW_PORT=18111
OVERLOAD_ADMIN_PORT=18112
VARIANTS=""
has_scenario churn && VARIANTS="$VARIANTS churn"
has_scenario overload && VARIANTS="$VARIANTS overload"

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

log() { echo "[wrk.sh] $*" >&2; }

# --- tools -----------------------------------------------------------------
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "need wrk and nginx (run as root to apt-get install them)" >&2
        exit 1
    fi
    log "installing wrk and nginx"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
fi
NGINX=$(command -v nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "fd limit $(ulimit -n); results in $OUT"

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binary"
    (cd "$ROOT" && cargo build --release --quiet --bin api-gateway)
fi

# --- configs ---------------------------------------------------------------
BODY='{"id":42,"name":"widget","price":9.99,"tags":["a","b","c"],"ok":true}'

mkdir -p "$OUT/backend" "$OUT/proxy" "$OUT/logs"
if [ "$TLS" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
        -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
        -keyout "$OUT/tls.key" -out "$OUT/tls.pem" 2>/dev/null
fi
{
    echo "worker_processes 1; user root; pid $OUT/backend/nginx.pid;"
    echo "error_log $OUT/backend/error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;"
    # With FULL a header for the gateway's response rule (and nginx's
    # proxy_hide_header) to remove.
    powered=""
    if [ "$FULL" = 1 ] || [ "$BEFORE_FULL" = 1 ]; then powered="add_header X-Powered-By bench-backend; "; fi
    for p in "${BACKEND_PORTS[@]}"; do
        echo "  server { listen 127.0.0.1:$p; location / { default_type application/json; ${powered}return 200 '$BODY'; } }"
    done
    echo "}"
} >"$OUT/backend/nginx.conf"

nginx_proxy_conf() { # workers [variant: main (default), churn, overload]
    local variant=${2:-main} dir=$OUT/proxy port=$NGINX_PORT servers=("${BACKEND_PORTS[@]}") level=warn
    case $variant in
    churn) dir=$OUT/proxy-churn port=$CHURN_NGINX_PORT ;;
    overload) dir=$OUT/proxy-overload port=$OVERLOAD_NGINX_PORT servers=("${SLOW_PORTS[@]}") level=crit ;;
    esac
    mkdir -p "$dir"
    {
        echo "worker_processes $1; user root; pid $dir/nginx.pid;"
        echo "worker_rlimit_nofile 65536;"
        echo "error_log $dir/error.log $level;"
        echo "events { worker_connections 16384; }"
        if [ "$FULL" = 1 ]; then
            # (`access_log off` would cancel every access_log of its level.)
            echo "http { keepalive_requests 100000000; keepalive_timeout 300s;"
            echo "  log_format bench '\$remote_addr - \$remote_user [\$time_local] \"\$request\" \$status \$body_bytes_sent \"\$http_referer\" \"\$http_user_agent\" \$request_time \$upstream_addr';"
            echo "  access_log $OUT/logs/nginx-$port.log bench buffer=32k flush=50ms;"
        else
            echo "http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;"
        fi
        # The limiter (the gateway always runs one; nginx only where the
        # scenario or FULL asks for the equivalent). Never denies.
        local zone=""
        if [ "$variant" = churn ]; then
            echo "  limit_req_zone \$http_x_client_key zone=churn:1m rate=1000000r/s;"
            zone=churn
        elif [ "$FULL" = 1 ]; then
            echo "  limit_req_zone \$binary_remote_addr zone=perip:1m rate=1000000r/s;"
            zone=perip
        fi
        echo "  upstream backends {"
        if [ "$variant" = overload ]; then
            # max_conns counted across workers (zone); beyond it, 502.
            echo "    zone backends 64k;"
            for p in "${servers[@]}"; do echo "    server 127.0.0.1:$p max_conns=$OVERLOAD_CAP;"; done
        else
            for p in "${servers[@]}"; do echo "    server 127.0.0.1:$p;"; done
        fi
        echo "    keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s;"
        echo "  }"
        if [ "$AUTH" = 1 ]; then
            # The gateway's consumers as an nginx key map.
            echo "  map \$http_x_api_key \$consumer { default \"\"; \"$BENCH_KEY\" alice;"
            for i in $(seq 1 100); do echo "    \"k-bench-$i\" c$i;"; done
            echo "  }"
        fi
        echo "  server { listen 127.0.0.1:$port;"
        if [ "$TLS" = 1 ] && [ "$variant" = main ]; then
            # The gateway's TLS defaults: 1.2 and 1.3, a session cache.
            echo "    listen 127.0.0.1:$NGINX_TLS_PORT ssl; ssl_certificate $OUT/tls.pem; ssl_certificate_key $OUT/tls.key;"
            echo "    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;"
        fi
        if [ -n "$zone" ]; then echo "    limit_req zone=$zone burst=1000000 nodelay;"; fi
        local loc
        for loc in $(nginx_locations); do
            echo "    location $loc { proxy_pass http://backends; proxy_http_version 1.1;"
            if [ "$AUTH" = 1 ] && [ "$loc" = /api ]; then
                echo "      if (\$consumer = \"\") { return 401; }"
                echo "      proxy_set_header X-API-Key \"\"; proxy_set_header X-Consumer \$consumer;"
            fi
            if [ "$FULL" = 1 ] && [ "$loc" = /api ]; then
                # The `/api` route's header rules.
                echo "      proxy_set_header X-Route api; proxy_set_header X-Debug \"\";"
                echo "      add_header X-Frame-Options DENY; proxy_hide_header X-Powered-By;"
            fi
            echo "      proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-For \$remote_addr; }"
        done
        echo "  }"
        echo "}"
    } >"$dir/nginx.conf"
}

# The locations nginx gets: `/` alone, or the same paths as the routes.
nginx_locations() {
    if [ "$ROUTES" = 0 ]; then echo "/"; return; fi
    for i in $(seq 1 $((ROUTES - 1))); do echo "/svc$i/"; done
    echo "/api"
}

# The gateway's `routes` (none when ROUTES=0).
routes_json() {
    [ "$ROUTES" = 0 ] && return
    local out="" i host auth=""
    if [ "${WITH_AUTH:-0}" = 1 ]; then
        auth=", \"auth\": {\"api_key\": {\"header\": \"X-API-Key\"}}"
        local consumers="{\"name\": \"alice\", \"api_keys\": [\"$BENCH_KEY\"]}"
        for i in $(seq 1 100); do consumers+=", {\"name\": \"c$i\", \"api_keys\": [\"k-bench-$i\"]}"; done
        echo "  \"consumers\": [$consumers],"
    fi
    for i in $(seq 1 $((ROUTES - 1))); do
        case $((i % 3)) in
        0) host="" ;;
        1) host="\"hosts\": [\"svc$i.example.test\"], " ;;
        2) host="\"hosts\": [\"*.svc$i.example.test\"], " ;;
        esac
        out+="{\"name\": \"svc$i\", ${host}\"path_prefix\": \"/svc$i/\", \"upstream\": \"default\"}, "
    done
    local rules=""
    if [ "${WITH_FULL:-0}" = 1 ]; then
        rules=", \"request_headers\": {\"set\": {\"X-Route\": \"api\"}, \"remove\": [\"X-Debug\"]}"
        rules+=", \"response_headers\": {\"set\": {\"X-Frame-Options\": \"DENY\"}, \"remove\": [\"X-Powered-By\"]}"
    fi
    out+="{\"name\": \"api\", \"path_prefix\": \"/api\", \"upstream\": \"default\"$auth$rules}"
    echo "  \"routes\": [$out],"
}

gateway_conf() { # workers
    SHADOW_JSON=$SHADOW TRACE_ON=$TRACE gateway_json "$1" "$GW_PORT" "$ROUTES" "$AUTH" "$FULL" main >"$OUT/gw.json"
    SHADOW_JSON=$BEFORE_SHADOW TRACE_ON=$BEFORE_TRACE gateway_json "$1" "$BEFORE_PORT" "$BEFORE_ROUTES" "$BEFORE_AUTH" "$BEFORE_FULL" main >"$OUT/gw-before.json"
    local v
    for v in $VARIANTS; do
        case $v in
        churn) gateway_json "$1" "$CHURN_GW_PORT" "$ROUTES" "$AUTH" "$FULL" churn >"$OUT/gw-churn.json" ;;
        overload) gateway_json "$1" "$OVERLOAD_GW_PORT" "$ROUTES" "$AUTH" "$FULL" overload >"$OUT/gw-overload.json" ;;
        esac
    done
}

gateway_json() { # workers port routes auth full variant(main|churn|overload)
    local backends="" i=0 p ports=("${BACKEND_PORTS[@]}") admin=null extra="" log='"off"'
    local limit='{ "algorithm": "token-bucket", "capacity": 1000000000, "refill_per_sec": 1000000000, "key": "ip" }'
    if [ -n "${SHADOW_JSON:-}" ] && [ "$6" = main ]; then
        local sh=$SHADOW_JSON
        case $sh in \[*) ;; *) sh="\"$sh\"" ;; esac
        limit="{ \"algorithm\": \"token-bucket\", \"capacity\": 1000000000, \"refill_per_sec\": 1000000000, \"key\": \"ip\", \"shadow\": $sh }"
    fi
    case $6 in
    churn)
        admin="\"127.0.0.1:$CHURN_ADMIN_PORT\""
        limit="{ \"algorithm\": \"token-bucket\", \"capacity\": 100000, \"refill_per_sec\": 0.01, \"key\": \"header:X-Client-Key\", \"max_keys\": $CHURN_MAX_KEYS }"
        ;;
    overload)
        admin="\"127.0.0.1:$OVERLOAD_ADMIN_PORT\""
        ports=("${SLOW_PORTS[@]}")
        extra="  \"max_inflight_per_backend\": $OVERLOAD_CAP, \"queue\": { \"max\": $OVERLOAD_QUEUE, \"timeout_ms\": $OVERLOAD_QUEUE_MS },"$'\n'
        ;;
    esac
    if [ "$5" = 1 ]; then log="\"$OUT/logs/gw-$2.log\""; fi
    if [ "${TRACE_ON:-0}" = 1 ] && [ "$6" = main ]; then
        extra+="  \"trace\": { \"enabled\": true, \"sample_per_million\": 0 },"$'\n'
    fi
    for p in "${ports[@]}"; do
        i=$((i + 1))
        backends+="${backends:+,}{\"name\":\"b$i\",\"addr\":\"127.0.0.1:$p\"}"
    done
    cat <<EOF
{
  "listen": "127.0.0.1:$2",
  "admin": $admin,
  "workers": $1,
  "backends": [$backends],
  "load_balancer": "round-robin",
  "rate_limit": $limit,
  "limits": { "max_connections": 30000, "max_idle_per_backend": 64 },
  "pipeline": ["logger", "cors", "rate-limit", "circuit-breaker", "proxy"],
  "cors": { "allow_origins": ["*"] },
$extra$(ROUTES=$3 WITH_AUTH=$4 WITH_FULL=$5 routes_json)
$(tls_json "$2" "$6")
  "access_log": $log
}
EOF
}

# The gateway's `tls` (none unless TLS=1); its port is the plain one + 4
# (nginx's TLS port is its plain one + 4 too).
tls_json() { # plain port, variant
    [ "$TLS" = 1 ] && [ "$2" = main ] || return 0
    echo "  \"tls\": {\"listen\": \"127.0.0.1:$(($1 + 4))\", \"certificates\": [{\"cert\": \"$OUT/tls.pem\", \"key\": \"$OUT/tls.key\"}]},"
}

# --- processes -------------------------------------------------------------
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# Starts a command in the background (pinned when a CPU list is given) and
# leaves its PID in LAST_PID (not echoed: a $(...) would wait on its stdout).
LAST_PID=""
start_bg() { # cpu-list-or-empty, command...
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@" </dev/null >>"$OUT/procs.log" 2>&1 &
    else
        "$@" </dev/null >>"$OUT/procs.log" 2>&1 &
    fi
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}
# Waits for a process that ends on its own.
reap_pid() {
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}
# Off the list the exit trap kills, so a recycled PID is never signalled.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]:-}"; do
        if [ -n "$p" ] && [ "$p" != "$1" ]; then keep+=("$p"); fi
    done
    PIDS=("${keep[@]:-}")
}

# Sum of a /proc status field (kB) over a process and its direct children
# (nginx master + workers; the gateway is one process).
proc_kb() { # pid field
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Resets the peak RSS (VmHWM) of a process and its direct children to their
# current RSS, so a later VmHWM is the peak since now.
reset_hwm() { # pid
    local p
    for p in "$1" $(pgrep -P "$1" || true); do
        { echo 5 >"/proc/$p/clear_refs"; } 2>/dev/null || true
    done
}

# Sum of the values of a gateway's Prometheus series whose line starts with
# the given text (empty if the admin port does not answer).
gw_metric() { # admin-port series-prefix
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | metric_sum "$2" || true
}
metric_sum() { # series-prefix (reads /metrics text on stdin)
    awk -v m="$1" 'index($0, m) == 1 { s += $NF; n++ } END { if (n) printf "%d", s }'
}
# The same from a saved /metrics text, 0 when the series is absent.
metric_in() { # text series-prefix
    local v
    v=$(metric_sum "$2" <<<"$1")
    echo "${v:-0}"
}

start_bg "$CPU_LOAD" "$NGINX" -p "$OUT/backend" -c "$OUT/backend/nginx.conf" -g 'daemon off;'
BACKEND_PID=$LAST_PID
wait_port "${BACKEND_PORTS[0]}"

# --- opt-in scenarios' files ---------------------------------------------------
if has_scenario churn; then
    cat >"$OUT/churn.lua" <<EOF
-- Every request carries X-Client-Key: k<N>, N cycling over $CHURN_KEYS values.
local keys, n = $CHURN_KEYS, 0
request = function()
  n = n % keys + 1
  wrk.headers["X-Client-Key"] = "k" .. n
  return wrk.format()
end
EOF
fi
if has_scenario overload; then
    cat >"$OUT/overload.lua" <<'EOF'
-- Counts the answers by status; done() prints "status S: N" lines.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
  end
  for s, n in pairs(total) do io.write(string.format("status %d: %d\n", s, n)) end
end
EOF
    cat >"$OUT/slow.py" <<'EOF'
# A slow backend: sleeps DELAY ms per request, then answers BODY (HTTP/1.1
# keep-alive, Content-Length, head and body in one write).
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, delay, body = int(sys.argv[1]), float(sys.argv[2]) / 1000, sys.argv[3].encode()
reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        time.sleep(delay)
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
S(("127.0.0.1", port), H).serve_forever()
EOF
    cat >"$OUT/probe.py" <<'EOF'
# Beside the overload wrk: one keep-alive request every 10 ms for DURATION s,
# writes "status latency_ms" per answer (and "error" per failed exchange).
import http.client, sys, time
port, dur, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
hdrs = dict(h.split(": ", 1) for h in sys.argv[4:])
end = time.monotonic() + dur
conn, lines = None, []
while time.monotonic() < end:
    t0 = time.monotonic()
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/items", headers=hdrs)
        r = conn.getresponse()
        r.read()
        lines.append(f"{r.status} {(time.monotonic() - t0) * 1e3:.3f}")
        if r.will_close:
            conn.close()
            conn = None
    except Exception:
        lines.append("error")
        if conn is not None:
            conn.close()
        conn = None
    time.sleep(0.01)
open(out, "w").write("\n".join(lines) + "\n")
EOF
    for p in "${SLOW_PORTS[@]}"; do
        start_bg "$CPU_LOAD" python3 "$OUT/slow.py" "$p" "$SLOW_MS" "$BODY"
    done
    for p in "${SLOW_PORTS[@]}"; do wait_port "$p"; done
fi

PROXY_PID=""
GW_PID=""
BEFORE_PID=""
CHURN_NGINX_PID=""
CHURN_GW_PID=""
OVERLOAD_NGINX_PID=""
OVERLOAD_GW_PID=""
start_proxies() { # workers cpus [main: not the opt-in scenarios' pairs]
    nginx_proxy_conf "$1"
    gateway_conf "$1"
    start_bg "$2" "$NGINX" -p "$OUT/proxy" -c "$OUT/proxy/nginx.conf" -g 'daemon off;'
    PROXY_PID=$LAST_PID
    start_bg "$2" env API_GATEWAY_LOG=warn "$BIN" --config "$OUT/gw.json"
    GW_PID=$LAST_PID
    if [ -n "$BIN_BEFORE" ]; then
        start_bg "$2" env API_GATEWAY_LOG=warn "$BIN_BEFORE" --config "$OUT/gw-before.json"
        BEFORE_PID=$LAST_PID
        wait_port $BEFORE_PORT
    fi
    wait_port $NGINX_PORT
    wait_port $GW_PORT
    [ "${3:-}" = main ] && return 0
    local v
    for v in $VARIANTS; do
        nginx_proxy_conf "$1" "$v"
        start_bg "$2" "$NGINX" -p "$OUT/proxy-$v" -c "$OUT/proxy-$v/nginx.conf" -g 'daemon off;'
        local np=$LAST_PID
        start_bg "$2" env API_GATEWAY_LOG=warn "$BIN" --config "$OUT/gw-$v.json"
        local gp=$LAST_PID
        case $v in
        churn) CHURN_NGINX_PID=$np CHURN_GW_PID=$gp
               wait_port "$CHURN_NGINX_PORT"; wait_port "$CHURN_GW_PORT" ;;
        overload) OVERLOAD_NGINX_PID=$np OVERLOAD_GW_PID=$gp
                  wait_port "$OVERLOAD_NGINX_PORT"; wait_port "$OVERLOAD_GW_PORT" ;;
        esac
    done
}
stop_proxies() {
    local p
    for p in "$PROXY_PID" "$GW_PID" "$BEFORE_PID" "$CHURN_NGINX_PID" "$CHURN_GW_PID" \
        "$OVERLOAD_NGINX_PID" "$OVERLOAD_GW_PID"; do
        if [ -n "$p" ]; then stop_pid "$p"; fi
    done
    BEFORE_PID="" CHURN_NGINX_PID="" CHURN_GW_PID="" OVERLOAD_NGINX_PID="" OVERLOAD_GW_PID=""
}

# With FULL: counts the lines of the access log(s) of the proxy on a port,
# then truncates them (both proxies append, O_APPEND, so that is safe).
ACCESS_LINES=""
access_logs_take() { # port
    ACCESS_LINES=""
    local f
    for f in "$OUT/logs/gw-$1.log" "$OUT/logs/nginx-$1.log"; do
        [ -f "$f" ] || continue
        sleep 0.2 # both flush every 50 ms
        ACCESS_LINES=$(wc -l <"$f")
        : >"$f"
    done
}

# --- measurement -----------------------------------------------------------
RESULTS="$OUT/runs.tsv"
: >"$RESULTS"

# CPU time (utime + stime, clock ticks) of a process and its children
# (nginx workers), to report the proxy's CPU cost per request.
cpu_ticks() { # pid
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

run_wrk() { # config scenario target port wrk-cpus proxy-pid
    local conns=50 extra=() scheme=http port=$4
    case $2 in
    ka1) conns=1 ;;
    close) extra=(-H "Connection: close") ;;
    tls_ka50) scheme=https port=$(($4 + 4)) ;;
    tls_close) scheme=https port=$(($4 + 4)) extra=(-H "Connection: close") ;;
    churn) extra=(-s "$OUT/churn.lua") ;;
    esac
    local pre=()
    [ -n "$5" ] && pre=(taskset -c "$5")
    local out t0 t1
    t0=$(cpu_ticks "$6")
    out=$("${pre[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${extra[@]}" "${WRK_HEADERS[@]}" "$scheme://127.0.0.1:$port/api/items" 2>&1 || true)
    t1=$(cpu_ticks "$6")
    access_logs_take "$port"
    echo "$out" >"$OUT/wrk-$1-$2-$3-$(date +%s%N).txt"
    local rps p50 p99 errs n cpu_us
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    cpu_us=$(awk -v t="$((t1 - t0))" -v n="${n:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print 0 }')
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' <<<"$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${rps:-0}" "${p50:-0}" "${p99:-0}" "$cpu_us" "$errs" >>"$RESULTS"
    log "$1 $2 $3: ${rps:-?} req/s p50 ${p50:-?} p99 ${p99:-?} cpu ${cpu_us} us/req $errs${ACCESS_LINES:+access log ${ACCESS_LINES} lines for ${n:-?} requests}"
}

OVERLOAD="$OUT/overload.tsv"
: >"$OVERLOAD"
# The overload scenario against one proxy: wrk with many connections, the
# probe beside it, the proxy's peak RSS over the run, the gateway's queue
# rejections.
run_overload() { # config target port wrk-cpus proxy-pid
    local pre=() stamp m0="" m1=""
    [ -n "$4" ] && pre=(taskset -c "$4")
    stamp=$(date +%s%N)
    local probe_out="$OUT/probe-$1-$2-$stamp.txt" probe_hdrs=() h
    for h in "${WRK_HEADERS[@]}"; do
        if [ "$h" != -H ]; then probe_hdrs+=("$h"); fi
    done
    if [ "$2" = gateway ]; then
        m0=$(curl -s --max-time 2 "http://127.0.0.1:$OVERLOAD_ADMIN_PORT/metrics" 2>/dev/null || true)
    fi
    reset_hwm "$5"
    start_bg "$4" python3 "$OUT/probe.py" "$3" "$DURATION" "$probe_out" "${probe_hdrs[@]}"
    local probe=$LAST_PID out
    out=$("${pre[@]}" wrk -t1 -c"$OVERLOAD_CONNS" -d"${DURATION}s" --latency -s "$OUT/overload.lua" "${WRK_HEADERS[@]}" "http://127.0.0.1:$3/api/items" 2>&1 || true)
    reap_pid "$probe"
    local peak
    peak=$(proc_kb "$5" VmHWM)
    if [ "$2" = gateway ]; then
        # After the queue timeout and one backend delay everything has
        # drained: in flight and queued must be back to 0.
        sleep 0.5
        m1=$(curl -s --max-time 2 "http://127.0.0.1:$OVERLOAD_ADMIN_PORT/metrics" 2>/dev/null || true)
    fi
    access_logs_take "$3"
    echo "$out" >"$OUT/wrk-$1-overload-$2-$stamp.txt"
    local rps p50 p99 max n statuses sock qfull="" qtout="" after=""
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    max=$(awk '$1 == "Latency" { print $4; exit }' <<<"$out")
    statuses=$(awk '$1 == "status" { sub(":", "", $2); printf "%s%s=%s", sep, $2, $3; sep = "," }' <<<"$out")
    sock=$(awk '/Socket errors/ { $1 = $1; print }' <<<"$out")
    if [ -n "$m0" ] && [ -n "$m1" ]; then
        local q='gateway_upstream_queue_rejected_total{upstream="default",reason='
        qfull=$(($(metric_in "$m1" "${q}\"full\"}") - $(metric_in "$m0" "${q}\"full\"}")))
        qtout=$(($(metric_in "$m1" "${q}\"timeout\"}") - $(metric_in "$m0" "${q}\"timeout\"}")))
        # What should not happen: failures charged to the backends' circuits,
        # an open circuit, requests still in flight or queued once drained.
        local fails open inflight queued
        fails=$(($(metric_in "$m1" gateway_backend_failures_total) - $(metric_in "$m0" gateway_backend_failures_total)))
        open=$(metric_in "$(grep -v 'state="CLOSED"' <<<"$m1" || true)" 'gateway_circuit_state{')
        inflight=$(metric_in "$m1" gateway_backend_inflight)
        queued=$(metric_in "$m1" gateway_upstream_queue_depth)
        after="${fails:-?} / ${open:-?} / ${inflight:-?} / ${queued:-?}"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "${rps:-0}" "${p50:-0}" "${p99:-0}" "${max:-0}" \
        "${n:-0}" "$statuses" "$sock" "$peak" "$probe_out" "$qfull" "$qtout" "$after" >>"$OVERLOAD"
    log "$1 overload $2: ${rps:-?} req/s p50 ${p50:-?} p99 ${p99:-?} max ${max:-?} statuses ${statuses:-?} peak RSS ${peak} kB${qfull:+ queue full $qfull timeout $qtout}${after:+ (backend failures / open circuits / in flight / queued after: $after)} $sock${ACCESS_LINES:+ access log ${ACCESS_LINES} lines for ${n:-?} requests}"
}

RSS="$OUT/rss.tsv"
: >"$RSS"
CHURN="$OUT/churn.tsv"
: >"$CHURN"

for config in $CONFIGS; do
    if [ $config = 1w ]; then
        start_proxies 1 "$CPU_PROXY"
        WRK_CPU=$CPU_LOAD
    else
        start_proxies 2 ""
        WRK_CPU=""
    fi
    # Warm up both (pools, page faults) before the first measured round.
    warm_ports="$NGINX_PORT $GW_PORT"
    if [ -n "$BIN_BEFORE" ]; then warm_ports="$warm_ports $BEFORE_PORT"; fi
    if has_scenario churn; then warm_ports="$warm_ports $CHURN_NGINX_PORT $CHURN_GW_PORT"; fi
    for port in $warm_ports; do
        wrk -t1 -c50 -d1s "${WRK_HEADERS[@]}" "http://127.0.0.1:$port/api/items" >/dev/null 2>&1 || true
        access_logs_take "$port"
    done
    if has_scenario churn; then
        evict0=$(gw_metric "$CHURN_ADMIN_PORT" gateway_ratelimit_evictions_total)
    fi
    for round in $(seq 1 "$ROUNDS"); do
        log "config $config round $round/$ROUNDS"
        for scenario in $SCENARIOS; do
            # Alternate who goes first, so drift in background load is shared.
            if [ $((round % 2)) = 1 ]; then order="direct nginx gateway"; else order="gateway nginx direct"; fi
            if [ -n "$BIN_BEFORE" ]; then
                if [ $((round % 2)) = 1 ]; then order="$order before"; else order="before $order"; fi
            fi
            for target in $order; do
                # The backends speak plain HTTP only.
                if [ "$target" = direct ] && [ "${scenario#tls_}" != "$scenario" ]; then continue; fi
                case $target in
                direct) port=${BACKEND_PORTS[0]} pid=$BACKEND_PID ;;
                nginx) port=$NGINX_PORT pid=$PROXY_PID ;;
                gateway) port=$GW_PORT pid=$GW_PID ;;
                before) port=$BEFORE_PORT pid=$BEFORE_PID ;;
                esac
                # The opt-in scenarios run on their own pairs, without "before".
                case $scenario/$target in
                churn/before | overload/before | overload/direct) continue ;;
                churn/nginx) port=$CHURN_NGINX_PORT pid=$CHURN_NGINX_PID ;;
                churn/gateway) port=$CHURN_GW_PORT pid=$CHURN_GW_PID ;;
                overload/nginx) port=$OVERLOAD_NGINX_PORT pid=$OVERLOAD_NGINX_PID ;;
                overload/gateway) port=$OVERLOAD_GW_PORT pid=$OVERLOAD_GW_PID ;;
                esac
                if [ "$scenario" = overload ]; then
                    run_overload "$config" "$target" "$port" "$WRK_CPU" "$pid"
                else
                    run_wrk "$config" "$scenario" "$target" "$port" "$WRK_CPU" "$pid"
                fi
            done
        done
    done
    printf '%s\tnginx\t%s\n%s\tgateway\t%s\n' \
        "$config" "$(proc_kb "$PROXY_PID" VmHWM)" "$config" "$(proc_kb "$GW_PID" VmHWM)" >>"$RSS"
    if has_scenario churn; then
        printf '%s\tnginx@churn\t%s\n%s\tgateway@churn\t%s\n' \
            "$config" "$(proc_kb "$CHURN_NGINX_PID" VmHWM)" "$config" "$(proc_kb "$CHURN_GW_PID" VmHWM)" >>"$RSS"
        evict1=$(gw_metric "$CHURN_ADMIN_PORT" gateway_ratelimit_evictions_total)
        denied=$(gw_metric "$CHURN_ADMIN_PORT" 'gateway_ratelimit_decisions_total{decision="denied"}')
        nomem=$(grep -c 'could not allocate node' "$OUT/proxy-churn/error.log" 2>/dev/null || true)
        printf '%s\t%s\t%s\t%s\n' "$config" "$(( ${evict1:-0} - ${evict0:-0} ))" "${denied:-?}" "${nomem:-0}" >>"$CHURN"
        log "$config churn: gateway evictions $(( ${evict1:-0} - ${evict0:-0} )), denied ${denied:-?}; nginx 'could not allocate node' ${nomem:-0}"
        : >"$OUT/proxy-churn/error.log"
    fi
    stop_proxies
done

# --- idle connections --------------------------------------------------------
IDLE="$OUT/idle.tsv"
: >"$IDLE"
if [ -z "${SKIP_IDLE:-}" ]; then
    cat >"$OUT/idle.py" <<'EOF'
# Opens N keep-alive connections (over TLS when a 4th argument is given),
# sends one request on each (so each has completed an exchange and sits
# idle in keep-alive), then holds them until it is killed.
# IDLE_HEADERS: extra header lines for that request (the API key).
import os, socket, ssl, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tls = len(sys.argv) > 4
extra = "".join(h + "\r\n" for h in os.environ.get("IDLE_HEADERS", "").split("|") if h).encode()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
socks, ok = [], 0
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="bench.test")
    s.sendall(b"GET /api/items HTTP/1.1\r\nHost: bench\r\n" + extra + b"\r\n")
    if s.recv(65536).startswith(b"HTTP/1.1 200"):
        ok += 1
    socks.append(s)
open(ready, "w").write(f"{ok}\n")
while True:
    time.sleep(3600)
EOF
    start_proxies 1 "$CPU_PROXY" main
    targets="nginx gateway"
    # Over TLS: IDLE_TLS_CONNS (default 5000) connections each.
    [ "$TLS" = 1 ] && targets="$targets nginx-tls gateway-tls"
    for target in $targets; do
        case $target in
        nginx*) pid=$PROXY_PID port=$NGINX_PORT ;;
        gateway*) pid=$GW_PID port=$GW_PORT ;;
        esac
        counts=$IDLE_CONNS tls_arg=()
        if [ "${target%-tls}" != "$target" ]; then
            port=$((port + 4)) counts=${IDLE_TLS_CONNS:-5000} tls_arg=(tls)
        fi
        for n in $counts; do
            before=$(proc_kb "$pid" VmRSS)
            before_anon=$(proc_kb "$pid" RssAnon)
            rm -f "$OUT/idle.ready"
            idle_headers=""
            for h in "${WRK_HEADERS[@]}"; do
                if [ "$h" != -H ]; then idle_headers+="${idle_headers:+|}$h"; fi
            done
            start_bg "" env IDLE_HEADERS="$idle_headers" python3 "$OUT/idle.py" "$port" "$n" "$OUT/idle.ready" "${tls_arg[@]}"
            cpid=$LAST_PID
            for _ in $(seq 1 1200); do [ -s "$OUT/idle.ready" ] && break; sleep 0.1; done
            sleep 1
            after=$(proc_kb "$pid" VmRSS)
            after_anon=$(proc_kb "$pid" RssAnon)
            ok=$(cat "$OUT/idle.ready" 2>/dev/null || echo 0)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$before" "$after" "$ok" "$before_anon" "$after_anon" >>"$IDLE"
            log "idle $target: RSS ${before} kB -> ${after} kB, RssAnon ${before_anon} kB -> ${after_anon} kB with $ok/$n idle connections"
            stop_pid "$cpid"
            sleep 1
        done
    done
    stop_proxies
fi

# --- report ------------------------------------------------------------------
python3 - "$RESULTS" "$RSS" "$IDLE" "$DURATION" "$ROUNDS" "$CHURN" "$OVERLOAD" "$CHURN_MAX_KEYS" "$CHURN_KEYS" "$OVERLOAD_CONNS" "$SLOW_MS" <<'EOF'
import sys, statistics as st
runs, rss, idle, dur, rounds, churn, overload, max_keys, churn_keys, ov_conns, slow_ms = sys.argv[1:12]

def ms(v):
    v = v.strip()
    for suf, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(suf):
            return float(v[: -len(suf)]) * f
    return float(v or 0)

data = {}
for line in open(runs):
    c, s, t, rps, p50, p99, cpu, errs = (line.rstrip("\n").split("\t") + [""])[:8]
    data.setdefault((c, s, t), []).append((float(rps), ms(p50), ms(p99), float(cpu or 0), errs))
peak = {}
for line in open(rss):
    c, t, kb = line.split()
    peak[(c, t)] = int(kb)

print(f"\nMedians of {rounds} interleaved rounds, {dur} s each (wrk -t1).\n")
SCENARIOS = ("ka50", "ka1", "close", "tls_ka50", "tls_close", "churn")
if data:
    print("CPU us/req: the target's own CPU time (all its threads/processes) per request;")
    print("for 'direct' that is the backend nginx.\n")
    print("| config | scenario | target | req/s | p50 ms | p99 ms | CPU us/req | peak RSS MB | req/s vs nginx | p99 vs nginx | CPU/req vs nginx |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in ("1w", "2w"):
    for s in SCENARIOS:
        med = {}
        for t in ("direct", "nginx", "gateway"):
            rows = data.get((c, s, t), [])
            if rows:
                med[t] = tuple(st.median(r[i] for r in rows) for i in range(4))
        for t in ("direct", "nginx", "gateway"):
            if t not in med:
                continue
            rps, p50, p99, cpu = med[t]
            # The opt-in scenarios' own pairs have their own peak.
            r = "" if t == "direct" else f"{peak.get((c, f'{t}@{s}'), peak.get((c, t), 0)) / 1024:.1f}"
            ratio = ratio99 = ratiocpu = ""
            if t == "gateway" and "nginx" in med:
                n = med["nginx"]
                ratio = f"{rps / n[0]:.2f}x"
                ratio99 = f"{p99 / n[2]:.2f}x" if n[2] else ""
                ratiocpu = f"{cpu / n[3]:.2f}x" if n[3] else ""
            print(f"| {c} | {s} | {t} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.1f} | {r} | {ratio} | {ratio99} | {ratiocpu} |")
if any(k[2] == "before" for k in data):
    print("\nThis build (after) against BIN_BEFORE (before), same rounds, medians:\n")
    print("| config | scenario | req/s after | req/s before | req/s after/before | p99 after/before | CPU/req after/before |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for c in ("1w", "2w"):
        for s in SCENARIOS:
            a, b = data.get((c, s, "gateway")), data.get((c, s, "before"))
            if not a or not b:
                continue
            ma = [st.median(r[i] for r in a) for i in range(4)]
            mb = [st.median(r[i] for r in b) for i in range(4)]
            q = lambda x, y: f"{x / y:.3f}x" if y else ""
            print(f"| {c} | {s} | {ma[0]:,.0f} | {mb[0]:,.0f} | {q(ma[0], mb[0])} | {q(ma[2], mb[2])} | {q(ma[3], mb[3])} |")
churn_rows = [l.rstrip("\n").split("\t") for l in open(churn) if l.strip()]
if churn_rows:
    print(f"\nchurn: {churn_keys} distinct X-Client-Key values; gateway max_keys {max_keys}, nginx zone 1m.")
    print("Over all rounds of a config (peak RSS above is the churn pair's own):\n")
    print("| config | gateway evictions (gateway_ratelimit_evictions_total) | gateway denied | nginx 'could not allocate node' (503) |")
    print("|---|---:|---:|---:|")
    for c, ev, den, nomem in churn_rows:
        print(f"| {c} | {int(ev):,} | {den} | {nomem} |")

ov = {}
for line in open(overload):
    f = line.rstrip("\n").split("\t")
    if len(f) < 14:
        continue
    ov.setdefault((f[0], f[1]), []).append(f)
if ov:
    d = float(dur)
    print(f"\noverload: wrk -t1 -c{ov_conns} against 3 backends that sleep {slow_ms} ms per request; medians of the runs")
    print("(latency over every answer; probe = one keep-alive request every 10 ms beside wrk,")
    print("its answers' latency by class, pooled over the runs; peak RSS = the proxy's VmHWM over")
    print("the run; queue = the gateway's 503s because its queue was full / the wait timed out).\n")
    print("Gateway check: backend failures charged to circuits during the run / open circuits /")
    print("requests in flight / queued 0.5 s after it, every run (expected: 0 / 0 / 0 / 0).\n")
    print("| config | target | req/s (all) | 2xx/s | non-2xx share | p50 ms | p99 ms | max ms | statuses per run | socket errors | probe 5xx p50 / p99 / max ms (n) | probe 2xx p50 / p99 ms (n) | peak RSS MB | queue full / timeout per run | gateway check |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|")
    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0
    for c in ("1w", "2w"):
        for t in ("nginx", "gateway"):
            rows = ov.get((c, t))
            if not rows:
                continue
            rps = st.median(float(r[2] or 0) for r in rows)
            p50 = st.median(ms(r[3]) for r in rows)
            p99 = st.median(ms(r[4]) for r in rows)
            mx = st.median(ms(r[5]) for r in rows)
            counts = []
            for r in rows:
                cs = {}
                for kv in filter(None, r[7].split(",")):
                    k, v = kv.split("=")
                    cs[int(k)] = int(v)
                counts.append(cs)
            ok = st.median(sum(v for k, v in cs.items() if 200 <= k < 300) for cs in counts)
            total = st.median(sum(cs.values()) for cs in counts)
            share = f"{100 * (total - ok) / total:.1f} %" if total else ""
            keys = sorted({k for cs in counts for k in cs})
            stat = ", ".join(f"{k}: {st.median(cs.get(k, 0) for cs in counts):,.0f}" for k in keys)
            sock = "; ".join(sorted({r[8] for r in rows if r[8]}))
            p5, p2, perr = [], [], 0
            for r in rows:
                try:
                    for l in open(r[10]):
                        f = l.split()
                        if not f:
                            continue
                        if f[0] == "error":
                            perr += 1
                        elif f[0].startswith("5"):
                            p5.append(float(f[1]))
                        elif f[0].startswith("2"):
                            p2.append(float(f[1]))
                except OSError:
                    pass
            probe5 = f"{pct(p5, .5):.2f} / {pct(p5, .99):.2f} / {max(p5):.2f} ({len(p5)})" if p5 else "(0)"
            probe2 = f"{pct(p2, .5):.2f} / {pct(p2, .99):.2f} ({len(p2)})" if p2 else "(0)"
            if perr:
                probe5 += f", {perr} probe errors"
            rss_mb = st.median(int(r[9] or 0) for r in rows) / 1024
            q = ""
            if t == "gateway" and all(r[11] != "" for r in rows):
                q = f"{st.median(int(r[11]) for r in rows):,.0f} / {st.median(int(r[12] or 0) for r in rows):,.0f}"
            check = "; ".join(r[13] for r in rows if r[13])
            print(f"| {c} | {t} | {rps:,.0f} | {ok / d:,.0f} | {share} | {p50:.3f} | {p99:.3f} | {mx:.3f} | {stat} | {sock} | {probe5} | {probe2} | {rss_mb:.1f} | {q} | {check} |")

errs = {k: [r[4] for r in v if r[4]] for k, v in data.items()}
errs = {k: v for k, v in errs.items() if v}
if errs:
    print("\nwrk reported errors/non-2xx:")
    for k, v in sorted(errs.items()):
        print(f"  {' '.join(k)}: {v[0]}")
lines = [l.split() for l in open(idle)] if idle else []
if lines:
    print("\n| idle keep-alive connections | RSS before MB | RSS with idle conns MB | VmRSS per connection | RssAnon per connection |")
    print("|---|---:|---:|---:|---:|")
    for t, before, after, ok, ba, aa in lines:
        n = max(int(ok), 1)
        print(f"| {t} ({ok} open) | {int(before)/1024:.1f} | {int(after)/1024:.1f} | {(int(after)-int(before))*1024/n:,.0f} B | {(int(aa)-int(ba))*1024/n:,.0f} B |")
EOF
log "raw wrk outputs in $OUT"
