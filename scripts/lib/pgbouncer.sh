# Sourced by scripts/test.sh and deploy/local-cluster.sh: starts a PgBouncer
# of their own, in transaction pooling mode, in front of TEST_DATABASE_URL's
# server, and exports USERHUB_TEST_PGBOUNCER_URL (no database name).
# Installs Debian's package when missing. `start_pgbouncer [DIR]` keeps its
# files in DIR (default: a new temporary folder); `stop_pgbouncer` stops it.

start_pgbouncer() {
    local bin=/usr/sbin/pgbouncer
    if [[ ! -x "$bin" ]]; then
        echo "== installing PgBouncer (Debian's package)"
        local sudo_cmd=()
        [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get install -y -qq pgbouncer >/dev/null
        # The package starts a system-wide instance; the tests use their own.
        "${sudo_cmd[@]}" service pgbouncer stop >/dev/null 2>&1 || true
    fi
    local authority host port user
    authority="${TEST_DATABASE_URL#*://}"
    authority="${authority%%/*}"
    user="postgres"
    [[ "$authority" == *@* ]] && user="${authority%%@*}" && user="${user%%:*}"
    authority="${authority##*@}"
    host="${authority%%:*}"
    port="${authority##*:}"
    [[ "$port" == "$authority" ]] && port=5432

    pgbouncer_dir="${1:-$(mktemp -d /tmp/userhub-pgbouncer.XXXXXX)}"
    mkdir -p "$pgbouncer_dir"
    local listen
    listen="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    cat >"$pgbouncer_dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = trust
auth_file = $pgbouncer_dir/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
logfile = $pgbouncer_dir/pgbouncer.log
pidfile = $pgbouncer_dir/pgbouncer.pid
INI
    echo "\"$user\" \"\"" >"$pgbouncer_dir/users.txt"
    local as_user=()
    if [[ "$(id -u)" -eq 0 ]]; then
        # PgBouncer refuses to run as root.
        chown -R postgres "$pgbouncer_dir"
        as_user=(-u postgres)
    fi
    "$bin" -d "${as_user[@]}" "$pgbouncer_dir/pgbouncer.ini"
    for _ in $(seq 1 50); do
        timeout 1 bash -c ">/dev/tcp/127.0.0.1/$listen" 2>/dev/null && break
        sleep 0.1
    done
    export USERHUB_TEST_PGBOUNCER_URL="postgres://$user@127.0.0.1:$listen"
    echo "== PgBouncer $("$bin" --version | head -n1 | awk '{print $2}') (transaction pooling) on 127.0.0.1:$listen"
}

stop_pgbouncer() {
    if [[ -n "${pgbouncer_dir:-}" && -f "$pgbouncer_dir/pgbouncer.pid" ]]; then
        kill "$(cat "$pgbouncer_dir/pgbouncer.pid")" 2>/dev/null || true
    fi
    [[ -n "${pgbouncer_dir:-}" ]] && rm -rf "$pgbouncer_dir"
}
