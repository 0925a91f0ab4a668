# Sourced by the browser and fuzz scripts: builds the server and starts it
# on a free port with a throw-away database, stopped when the script exits.
#
# After `start_server`: SERVER_URL (http://127.0.0.1:<port>), SERVER_PID,
# ROOT_EMAIL and ROOT_PASSWORD (the first superuser).

ROOT_EMAIL="root@example.com"
ROOT_PASSWORD="Correct-Horse-Battery-9"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server <database-url> [VAR=value ...]
start_server() {
    local database_url="$1"
    shift
    cargo build --quiet -p userhub-server
    local bin
    bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/userhub-server"
    local port
    port="${SERVER_PORT:-$(free_port)}"
    SERVER_URL="http://127.0.0.1:$port"
    SERVER_LOG="$(mktemp)"
    env APP_ENV=development HOST=127.0.0.1 PORT="$port" WORKERS=2 \
        DATABASE_URL="$database_url" \
        JWT_SECRET_KEY="test-signing-key-of-at-least-32-bytes!!" \
        BCRYPT_COST=10 AUTH_RATE_LIMIT_PER_MINUTE=0 \
        FIRST_SUPERUSER_EMAIL="$ROOT_EMAIL" FIRST_SUPERUSER_PASSWORD="$ROOT_PASSWORD" \
        RUST_LOG="${RUST_LOG:-warn}" \
        "$@" "$bin" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if curl -fsS "$SERVER_URL/health/live" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    echo "error: the server did not start; its log:" >&2
    cat "$SERVER_LOG" >&2
    return 1
}

stop_server() {
    if [[ -n "${SERVER_PID:-}" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# An access token of the first superuser.
root_token() {
    curl -fsS -X POST "$SERVER_URL/api/auth/login" \
        -H 'content-type: application/json' \
        -d "{\"email\": \"$ROOT_EMAIL\", \"password\": \"$ROOT_PASSWORD\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
