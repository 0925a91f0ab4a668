#!/usr/bin/env bash
# Database failover drill (outside CI: about a minute per run).
#
#   deploy/failover-drill.sh [RUNS]
#
# Builds a two-node PostgreSQL cluster managed by Patroni (synchronous
# replication) with a one-node etcd, puts HAProxy in front of it with
# Patroni's primary check (`GET /primary` on its REST API), starts one
# UserHub instance on HAProxy's port, and runs a steady write load
# (registrations, logins and profile updates; deploy/failover_load.py).
# After 10 s it kills the primary node outright (Patroni and PostgreSQL,
# SIGKILL), lets the load run 30 s more, then checks on the new primary that
# every acknowledged write is there. It prints one JSON line per run: the
# seconds during which requests got 503 (or no answer), the statuses, the
# 5xx other than 503 (must be 0), and the acknowledged writes lost (must be
# 0). UserHub is not restarted. Installs Debian's patroni, etcd-server and
# haproxy when missing; needs PostgreSQL's binaries under /usr/lib/postgresql.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-1}"
server_bin="${USERHUB_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/userhub-server}"
[[ -x "$server_bin" ]] || { echo "error: no server binary at $server_bin (cargo build -p userhub-server)" >&2; exit 1; }
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"

need=()
command -v patroni >/dev/null || need+=(patroni)
command -v etcd >/dev/null || need+=(etcd-server)
command -v haproxy >/dev/null || need+=(haproxy)
if [[ ${#need[@]} -gt 0 ]]; then
    echo "== installing ${need[*]} (Debian's packages)"
    sudo_cmd=()
    [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
    # The packages start system-wide services; the drill runs its own.
    for service in etcd haproxy patroni; do
        "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
    done
fi

as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() {
    local what="$1" seconds="$2"
    shift 2
    for _ in $(seq 1 $((seconds * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "error: $what did not happen within ${seconds}s" >&2
    return 1
}

# One run, in a subshell of its own so that its exit trap stops everything it started.
one_run() (
    pids=()
    dir="$(mktemp -d /tmp/userhub-failover.XXXXXX)"
    chmod 755 "$dir"
    etcd_client="$(free_port)"; etcd_peer="$(free_port)"; haproxy_port="$(free_port)"; app_port="$(free_port)"
    declare -A pg rest
    for node in 1 2; do pg[$node]="$(free_port)"; rest[$node]="$(free_port)"; done
    cleanup_run() {
        local status=$?
        if [[ "$status" -ne 0 ]]; then
            # Keep the logs of a failed run.
            mkdir -p build/failover-logs
            cp "$dir"/*.log build/failover-logs/ 2>/dev/null || true
            echo "logs of the failed run: build/failover-logs/" >&2
        fi
        for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        pkill -KILL -f "$dir/" 2>/dev/null || true
        sleep 0.5
        rm -rf "$dir"
    }
    trap cleanup_run EXIT

    etcd --name drill --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "drill=http://127.0.0.1:$etcd_peer" >"$dir/etcd.log" 2>&1 &
    pids+=($!); disown
    wait_for "etcd" 20 curl -fs "http://127.0.0.1:$etcd_client/health" || exit 1

    for node in 1 2; do
        mkdir -p "$dir/node$node"
        cat >"$dir/node$node.yml" <<YML
scope: userhub-drill-$$
name: node$node
restapi:
  listen: 127.0.0.1:${rest[$node]}
  connect_address: 127.0.0.1:${rest[$node]}
etcd3:
  hosts: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 100
        wal_level: replica
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${pg[$node]}
  connect_address: 127.0.0.1:${pg[$node]}
  data_dir: $dir/node$node/data
  bin_dir: $pg_bin
  pgpass: $dir/node$node/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $dir/node$node
YML
    done
    chown -R postgres "$dir" 2>/dev/null || true
    as_postgres patroni "$dir/node1.yml" >"$dir/node1.log" 2>&1 &
    pids+=($!); disown
    wait_for "node1 to lead" 60 curl -fs "http://127.0.0.1:${rest[1]}/primary" || exit 1
    as_postgres patroni "$dir/node2.yml" >"$dir/node2.log" 2>&1 &
    pids+=($!); disown
    # The replica is streaming and synchronous before the load starts.
    wait_for "node2 to be the synchronous standby" 90 \
        bash -c "curl -fs http://127.0.0.1:${rest[1]}/cluster | grep -q sync_standby" || exit 1

    cat >"$dir/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
listen postgres
    bind 127.0.0.1:$haproxy_port
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
    server node1 127.0.0.1:${pg[1]} check port ${rest[1]}
    server node2 127.0.0.1:${pg[2]} check port ${rest[2]}
CFG
    haproxy -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
    pids+=($!); disown
    # HAProxy counts both nodes up until their checks say otherwise (two
    # failed checks, 1 s): until then a connection may reach the standby.
    sleep 2
    db_url="postgres://postgres:postgres@127.0.0.1:$haproxy_port/postgres"
    wait_for "HAProxy to reach the primary" 20 psql "$db_url" -Atc "SELECT 1" || exit 1

    env -i PATH="$PATH" HOST=127.0.0.1 PORT="$app_port" WORKERS=2 DATABASE_URL="$db_url" \
        JWT_SECRET_KEY="failover-drill-signing-key-of-32-bytes!" BCRYPT_COST=10 \
        AUTH_RATE_LIMIT_PER_MINUTE=0 PASSWORD_HASH_BUDGET_PER_MINUTE=0 LOGIN_MAX_FAILURES=0 \
        DB_ACQUIRE_TIMEOUT_SECONDS=2 DB_CONNECT_TIMEOUT_SECONDS=2 RUST_LOG=warn \
        "$server_bin" >"$dir/userhub.log" 2>&1 &
    app=$!
    pids+=("$app"); disown
    wait_for "UserHub" 30 curl -fs "http://127.0.0.1:$app_port/health" || exit 1

    python3 deploy/failover_load.py run "http://127.0.0.1:$app_port" 40 "$dir/load.json" &
    load=$!
    sleep 10
    leader=1
    curl -fs "http://127.0.0.1:${rest[2]}/primary" >/dev/null 2>&1 && leader=2
    # The whole primary node dies: Patroni first, so it cannot restart PostgreSQL.
    pkill -KILL -f "patroni $dir/node$leader.yml" || true
    kill -KILL "$(head -n1 "$dir/node$leader/data/postmaster.pid")" 2>/dev/null || true
    wait "$load"
    kill -0 "$app" 2>/dev/null || { echo "error: UserHub exited" >&2; exit 1; }
    python3 deploy/failover_load.py check "$dir/load.json" "$db_url"
)

failed=0
for run in $(seq 1 "$runs"); do
    echo "== run $run"
    one_run || failed=$((failed + 1))
done
echo "$((runs - failed)) of $runs runs passed"
[[ "$failed" -eq 0 ]]
