#!/usr/bin/env bash
# A local UserHub cluster on loopback: three instances behind HAProxy, all
# reaching PostgreSQL through one PgBouncer in transaction pooling mode.
#
#   deploy/local-cluster.sh start       # fresh database, PgBouncer, 3 instances, HAProxy
#   deploy/local-cluster.sh restart N   # SIGTERM instance N (1-3), wait, start it again
#   deploy/local-cluster.sh stop
#
# `start` prints the load balancer's URL and writes it, with the other
# addresses, to $CLUSTER_DIR/env (default build/cluster). HAProxy checks
# `/health` every 200 ms and takes an instance out at its first 503, so an
# instance told to stop (it answers 503 for SHUTDOWN_DELAY_SECONDS while it
# still serves) gets no new requests before its listener closes; connection
# failures are retried on another instance. The instances share the
# database, so sessions, lockouts, rate limits (RATE_LIMIT_STORE=database)
# and the mail queue hold across them; /metrics is per instance.
#
# Needs PostgreSQL at TEST_DATABASE_URL (default: the local server, user
# postgres, trust authentication) and the server binary (USERHUB_SERVER_BIN,
# default target/debug/userhub-server). Installs Debian's haproxy and
# pgbouncer when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pgbouncer.sh

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
state="${CLUSTER_DIR:-build/cluster}"
server_bin="${USERHUB_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/userhub-server}"
instances=3
database="userhub_cluster"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_healthy() {
    local url="$1"
    for _ in $(seq 1 100); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    echo "error: $url/health did not answer 200" >&2
    return 1
}

start_instance() {
    local n="$1" port
    port="$(cat "$state/port.$n")"
    # shellcheck disable=SC1091
    source "$state/env"
    env -i PATH="$PATH" \
        HOST=127.0.0.1 PORT="$port" WORKERS=2 \
        DATABASE_URL="$USERHUB_POOLED_URL" DB_POOLER=pgbouncer DATABASE_DIRECT_URL="$USERHUB_DIRECT_URL" \
        DB_POOL_MAX_SIZE=8 RATE_LIMIT_STORE=database \
        JWT_SECRET_KEY="local-cluster-signing-key-of-32-bytes!!" BCRYPT_COST=10 \
        FIRST_SUPERUSER_EMAIL=root@example.com FIRST_SUPERUSER_PASSWORD="Correct-Horse-Battery-9" \
        AUTH_RATE_LIMIT_PER_MINUTE=0 PASSWORD_HASH_BUDGET_PER_MINUTE=0 TRUST_FORWARDED_FOR=true \
        SHUTDOWN_DELAY_SECONDS=2 SHUTDOWN_TIMEOUT_SECONDS=10 RUST_LOG=warn \
        "$server_bin" >>"$state/instance.$n.log" 2>&1 &
    echo $! >"$state/pid.$n"
    wait_healthy "http://127.0.0.1:$port"
}

stop_instance() {
    local n="$1" pid
    [[ -f "$state/pid.$n" ]] || return 0
    pid="$(cat "$state/pid.$n")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$state/pid.$n"
}

start() {
    [[ -x "$server_bin" ]] || { echo "error: no server binary at $server_bin (cargo build -p userhub-server)" >&2; exit 1; }
    if ! command -v haproxy >/dev/null; then
        echo "== installing HAProxy (Debian's package)"
        local sudo_cmd=()
        [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get install -y -qq haproxy >/dev/null
        "${sudo_cmd[@]}" service haproxy stop >/dev/null 2>&1 || true
    fi
    stop 2>/dev/null || true
    mkdir -p "$state"
    psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
    psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $database" >/dev/null
    start_pgbouncer
    echo "$pgbouncer_dir" >"$state/pgbouncer_dir"
    local lb
    lb="$(free_port)"
    {
        echo "USERHUB_POOLED_URL=$USERHUB_TEST_PGBOUNCER_URL/$database"
        echo "USERHUB_DIRECT_URL=${TEST_DATABASE_URL%/*}/$database"
        echo "CLUSTER_URL=http://127.0.0.1:$lb"
    } >"$state/env"
    local servers=""
    for n in $(seq 1 "$instances"); do
        free_port >"$state/port.$n"
        servers+="    server app$n 127.0.0.1:$(cat "$state/port.$n") check inter 200ms fall 1 rise 2"$'\n'
    done
    cat >"$state/haproxy.cfg" <<CFG
global
    maxconn 2000
    pidfile $PWD/$state/haproxy.pid

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
    # Appends its own X-Forwarded-For line after any the client sent.
    option forwardfor

frontend api
    bind 127.0.0.1:$lb
    default_backend userhub

backend userhub
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    http-response set-header X-Served-By %s
$servers
CFG
    for n in $(seq 1 "$instances"); do
        start_instance "$n"
    done
    haproxy -D -f "$state/haproxy.cfg"
    wait_healthy "http://127.0.0.1:$lb"
    echo "== cluster up: http://127.0.0.1:$lb ($instances instances, PgBouncer, HAProxy)"
}

stop() {
    [[ -d "$state" ]] || return 0
    if [[ -f "$state/haproxy.pid" ]]; then
        kill "$(cat "$state/haproxy.pid")" 2>/dev/null || true
        rm -f "$state/haproxy.pid"
    fi
    for n in $(seq 1 "$instances"); do
        stop_instance "$n"
    done
    if [[ -f "$state/pgbouncer_dir" ]]; then
        pgbouncer_dir="$(cat "$state/pgbouncer_dir")"
        stop_pgbouncer
        rm -f "$state/pgbouncer_dir"
    fi
    psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart)
        n="${2:?restart needs an instance number}"
        stop_instance "$n"
        start_instance "$n"
        # HAProxy takes it back after two good checks.
        sleep 0.6
        ;;
    *) echo "usage: $0 start | restart N | stop" >&2; exit 2 ;;
esac
