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
# IDLE_CONNS (default 10000), SKIP_BUILD=1, SKIP_IDLE=1, OUT (results dir),
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
# implies ROUTES >= 1), BEFORE_AUTH (the "before" target's AUTH, default
# AUTH: BIN_BEFORE=this build AUTH=1 BEFORE_AUTH=0 prices the auth stage),
# TLS (default 0; 1: both proxies also listen with TLS, the same ECDSA
# P-256 certificate made here with openssl, and two scenarios are added:
# tls_ka50, keep-alive over TLS with 50 connections, and tls_close, a new
# TLS connection (a full handshake: wrk does not resume sessions) per
# request; SCENARIOS picks the scenarios, default "ka50 ka1 close" plus
# the TLS ones).
#
# The gateway runs its full pipeline: logger (access_log "off", the same as
# nginx's `access_log off`), cors, rate-limit (token bucket that never
# denies), circuit-breaker, round-robin proxy with pooled upstreams.

set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/gw-wrk.XXXXXX)}
mkdir -p "$OUT"
BIN="$ROOT/target/release/api-gateway"
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
BEFORE_AUTH=${BEFORE_AUTH:-$AUTH}
if [ "$AUTH" = 1 ] && [ "$ROUTES" = 0 ]; then ROUTES=1; fi
BENCH_KEY=k-bench-alice
KEY_HEADER=()
if [ "$AUTH" = 1 ] || [ "$BEFORE_AUTH" = 1 ]; then KEY_HEADER=(-H "X-API-Key: $BENCH_KEY"); fi

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

mkdir -p "$OUT/backend" "$OUT/proxy"
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
    for p in "${BACKEND_PORTS[@]}"; do
        echo "  server { listen 127.0.0.1:$p; location / { default_type application/json; return 200 '$BODY'; } }"
    done
    echo "}"
} >"$OUT/backend/nginx.conf"

nginx_proxy_conf() { # workers
    {
        echo "worker_processes $1; user root; pid $OUT/proxy/nginx.pid;"
        echo "worker_rlimit_nofile 65536;"
        echo "error_log $OUT/proxy/error.log warn;"
        echo "events { worker_connections 16384; }"
        echo "http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;"
        echo "  upstream backends {"
        for p in "${BACKEND_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done
        echo "    keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s;"
        echo "  }"
        if [ "$AUTH" = 1 ]; then
            # The gateway's consumers as an nginx key map.
            echo "  map \$http_x_api_key \$consumer { default \"\"; \"$BENCH_KEY\" alice;"
            for i in $(seq 1 100); do echo "    \"k-bench-$i\" c$i;"; done
            echo "  }"
        fi
        echo "  server { listen 127.0.0.1:$NGINX_PORT;"
        if [ "$TLS" = 1 ]; then
            # The gateway's TLS defaults: 1.2 and 1.3, a session cache.
            echo "    listen 127.0.0.1:$NGINX_TLS_PORT ssl; ssl_certificate $OUT/tls.pem; ssl_certificate_key $OUT/tls.key;"
            echo "    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;"
        fi
        local loc
        for loc in $(nginx_locations); do
            echo "    location $loc { proxy_pass http://backends; proxy_http_version 1.1;"
            if [ "$AUTH" = 1 ] && [ "$loc" = /api ]; then
                echo "      if (\$consumer = \"\") { return 401; }"
                echo "      proxy_set_header X-API-Key \"\"; proxy_set_header X-Consumer \$consumer;"
            fi
            echo "      proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-For \$remote_addr; }"
        done
        echo "  }"
        echo "}"
    } >"$OUT/proxy/nginx.conf"
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
    out+="{\"name\": \"api\", \"path_prefix\": \"/api\", \"upstream\": \"default\"$auth}"
    echo "  \"routes\": [$out],"
}

gateway_conf() { # workers
    gateway_json "$1" "$GW_PORT" "$ROUTES" "$AUTH" >"$OUT/gw.json"
    gateway_json "$1" "$BEFORE_PORT" "${BEFORE_ROUTES:-$ROUTES}" "$BEFORE_AUTH" >"$OUT/gw-before.json"
}

gateway_json() { # workers port routes auth
    local backends="" i=0 p
    for p in "${BACKEND_PORTS[@]}"; do
        i=$((i + 1))
        backends+="${backends:+,}{\"name\":\"b$i\",\"addr\":\"127.0.0.1:$p\"}"
    done
    cat <<EOF
{
  "listen": "127.0.0.1:$2",
  "admin": null,
  "workers": $1,
  "backends": [$backends],
  "load_balancer": "round-robin",
  "rate_limit": { "algorithm": "token-bucket", "capacity": 1000000000, "refill_per_sec": 1000000000, "key": "ip" },
  "limits": { "max_connections": 30000, "max_idle_per_backend": 64 },
  "pipeline": ["logger", "cors", "rate-limit", "circuit-breaker", "proxy"],
  "cors": { "allow_origins": ["*"] },
$(ROUTES=$3 WITH_AUTH=$4 routes_json)
$(tls_json "$2")
  "access_log": "off"
}
EOF
}

# The gateway's `tls` (none unless TLS=1); its port is the plain one + 4
# (nginx's TLS port is its plain one + 4 too).
tls_json() { # plain port
    [ "$TLS" = 1 ] || return 0
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

start_bg "$CPU_LOAD" "$NGINX" -p "$OUT/backend" -c "$OUT/backend/nginx.conf" -g 'daemon off;'
BACKEND_PID=$LAST_PID
wait_port "${BACKEND_PORTS[0]}"

PROXY_PID=""
GW_PID=""
BEFORE_PID=""
start_proxies() { # workers cpus
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
}
stop_proxies() {
    stop_pid "$PROXY_PID"
    stop_pid "$GW_PID"
    if [ -n "$BEFORE_PID" ]; then stop_pid "$BEFORE_PID"; fi
    BEFORE_PID=""
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
    esac
    local pre=()
    [ -n "$5" ] && pre=(taskset -c "$5")
    local out t0 t1
    t0=$(cpu_ticks "$6")
    out=$("${pre[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${extra[@]}" "${KEY_HEADER[@]}" "$scheme://127.0.0.1:$port/api/items" 2>&1 || true)
    t1=$(cpu_ticks "$6")
    echo "$out" >"$OUT/wrk-$1-$2-$3-$(date +%s%N).txt"
    local rps p50 p99 errs n cpu_us
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    cpu_us=$(awk -v t="$((t1 - t0))" -v n="${n:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print 0 }')
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' <<<"$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${rps:-0}" "${p50:-0}" "${p99:-0}" "$cpu_us" "$errs" >>"$RESULTS"
    log "$1 $2 $3: ${rps:-?} req/s p50 ${p50:-?} p99 ${p99:-?} cpu ${cpu_us} us/req $errs"
}

RSS="$OUT/rss.tsv"
: >"$RSS"

for config in $CONFIGS; do
    if [ $config = 1w ]; then
        start_proxies 1 "$CPU_PROXY"
        WRK_CPU=$CPU_LOAD
    else
        start_proxies 2 ""
        WRK_CPU=""
    fi
    # Warm up both (pools, page faults) before the first measured round.
    wrk -t1 -c50 -d1s "${KEY_HEADER[@]}" "http://127.0.0.1:$NGINX_PORT/api/items" >/dev/null 2>&1 || true
    wrk -t1 -c50 -d1s "${KEY_HEADER[@]}" "http://127.0.0.1:$GW_PORT/api/items" >/dev/null 2>&1 || true
    if [ -n "$BIN_BEFORE" ]; then wrk -t1 -c50 -d1s "${KEY_HEADER[@]}" "http://127.0.0.1:$BEFORE_PORT/api/items" >/dev/null 2>&1 || true; fi
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
                run_wrk "$config" "$scenario" "$target" "$port" "$WRK_CPU" "$pid"
            done
        done
    done
    printf '%s\tnginx\t%s\n%s\tgateway\t%s\n' \
        "$config" "$(proc_kb "$PROXY_PID" VmHWM)" "$config" "$(proc_kb "$GW_PID" VmHWM)" >>"$RSS"
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
import socket, ssl, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tls = len(sys.argv) > 4
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
socks, ok = [], 0
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="bench.test")
    s.sendall(b"GET /api/items HTTP/1.1\r\nHost: bench\r\n\r\n")
    if s.recv(65536).startswith(b"HTTP/1.1 200"):
        ok += 1
    socks.append(s)
open(ready, "w").write(f"{ok}\n")
while True:
    time.sleep(3600)
EOF
    start_proxies 1 "$CPU_PROXY"
    targets="nginx gateway"
    # Over TLS: IDLE_TLS_CONNS (default 5000) connections each.
    [ "$TLS" = 1 ] && targets="$targets nginx-tls gateway-tls"
    for target in $targets; do
        case $target in
        nginx*) pid=$PROXY_PID port=$NGINX_PORT ;;
        gateway*) pid=$GW_PID port=$GW_PORT ;;
        esac
        n=$IDLE_CONNS tls_arg=()
        if [ "${target%-tls}" != "$target" ]; then
            port=$((port + 4)) n=${IDLE_TLS_CONNS:-5000} tls_arg=(tls)
        fi
        before=$(proc_kb "$pid" VmRSS)
        rm -f "$OUT/idle.ready"
        start_bg "" python3 "$OUT/idle.py" "$port" "$n" "$OUT/idle.ready" "${tls_arg[@]}"
        cpid=$LAST_PID
        for _ in $(seq 1 1200); do [ -s "$OUT/idle.ready" ] && break; sleep 0.1; done
        sleep 1
        after=$(proc_kb "$pid" VmRSS)
        ok=$(cat "$OUT/idle.ready" 2>/dev/null || echo 0)
        printf '%s\t%s\t%s\t%s\n' "$target" "$before" "$after" "$ok" >>"$IDLE"
        log "idle $target: RSS ${before} kB -> ${after} kB with $ok/$n idle connections"
        stop_pid "$cpid"
        sleep 1
    done
    stop_proxies
fi

# --- report ------------------------------------------------------------------
python3 - "$RESULTS" "$RSS" "$IDLE" "$DURATION" "$ROUNDS" <<'EOF'
import sys, statistics as st
runs, rss, idle, dur, rounds = sys.argv[1:6]

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
print("CPU us/req: the target's own CPU time (all its threads/processes) per request;")
print("for 'direct' that is the backend nginx.\n")
print("| config | scenario | target | req/s | p50 ms | p99 ms | CPU us/req | peak RSS MB | req/s vs nginx | p99 vs nginx | CPU/req vs nginx |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in ("1w", "2w"):
    for s in ("ka50", "ka1", "close", "tls_ka50", "tls_close"):
        med = {}
        for t in ("direct", "nginx", "gateway"):
            rows = data.get((c, s, t), [])
            if rows:
                med[t] = tuple(st.median(r[i] for r in rows) for i in range(4))
        for t in ("direct", "nginx", "gateway"):
            if t not in med:
                continue
            rps, p50, p99, cpu = med[t]
            r = "" if t == "direct" else f"{peak.get((c, t), 0) / 1024:.1f}"
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
        for s in ("ka50", "ka1", "close", "tls_ka50", "tls_close"):
            a, b = data.get((c, s, "gateway")), data.get((c, s, "before"))
            if not a or not b:
                continue
            ma = [st.median(r[i] for r in a) for i in range(4)]
            mb = [st.median(r[i] for r in b) for i in range(4)]
            q = lambda x, y: f"{x / y:.3f}x" if y else ""
            print(f"| {c} | {s} | {ma[0]:,.0f} | {mb[0]:,.0f} | {q(ma[0], mb[0])} | {q(ma[2], mb[2])} | {q(ma[3], mb[3])} |")
errs = {k: [r[4] for r in v if r[4]] for k, v in data.items()}
errs = {k: v for k, v in errs.items() if v}
if errs:
    print("\nwrk reported errors/non-2xx:")
    for k, v in sorted(errs.items()):
        print(f"  {' '.join(k)}: {v[0]}")
lines = [l.split() for l in open(idle)] if idle else []
if lines:
    print("\n| idle keep-alive connections | RSS before MB | RSS with idle conns MB | per connection |")
    print("|---|---:|---:|---:|")
    for t, before, after, ok in lines:
        n = max(int(ok), 1)
        print(f"| {t} ({ok} open) | {int(before)/1024:.1f} | {int(after)/1024:.1f} | {(int(after)-int(before))*1024/n:,.0f} B |")
EOF
log "raw wrk outputs in $OUT"
