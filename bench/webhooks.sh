#!/usr/bin/env bash
# Webhooks' benchmark: the release server on a fresh PostgreSQL database,
# delivering to a local receiver (bench/webhook_receiver.py, which answers
# 204 at once).
#
#   bench/webhooks.sh [--duration SECONDS] [--events N]
#
# 1. The outbox's cost on the write path: registrations (BCRYPT_COST=10,
#    the least the server takes) and profile writes (PATCH full_name by a
#    superuser, no hash), with no webhook, then with one subscribed to
#    both event types and delivering meanwhile; three rounds,
#    alternating, by wrk.
# 2. Events delivered per second: N events (default 5000) written at once
#    into the audit trail (one INSERT; the trigger queues their
#    deliveries) for one endpoint, then for four; the time until the
#    receiver has them all. Three rounds each.
# Results go to bench/results/webhooks.md and the console. Needs wrk, psql
# and PostgreSQL at BENCH_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
events=5000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --events) events="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

admin_url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="userhub_bench_webhooks"
db_url="${admin_url%/*}/$db"
export BENCH_LUA="$PWD/bench/lua"
results="bench/results/webhooks.md"
command -v wrk >/dev/null || { sudo_cmd=(); [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo); "${sudo_cmd[@]}" apt-get install -y -qq wrk >/dev/null; }

echo "== building (release)"
cargo build --release --quiet -p userhub-server
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"; receiver_port="$(free_port)"
api="http://127.0.0.1:$port"
env -i PATH="$PATH" DATABASE_URL="$db_url" PORT="$port" JWT_SECRET_KEY="bench-signing-key-of-at-least-32-bytes!!" \
    BCRYPT_COST=10 AUTH_RATE_LIMIT_PER_MINUTE=0 PASSWORD_HASH_BUDGET_PER_MINUTE=0 USER_WRITE_LIMIT_PER_MINUTE=0 \
    FIRST_SUPERUSER_EMAIL=root@example.com FIRST_SUPERUSER_PASSWORD="bench-Password-42!" \
    WEBHOOK_ALLOW_PRIVATE_NETWORKS=true DB_POOL_MAX_SIZE=32 RUST_LOG=warn \
    "$target/release/userhub-server" > /tmp/userhub-bench-webhooks.log 2>&1 &
server_pid=$!
python3 bench/webhook_receiver.py "$receiver_port" &
receiver_pid=$!
trap 'kill $server_pid $receiver_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "$api/health" >/dev/null && break; sleep 0.2; done
token="$(curl -sf "$api/api/auth/login" -H 'Content-Type: application/json' \
    -d '{"email": "root@example.com", "password": "bench-Password-42!"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

subscribe() { # subscribe <events JSON>; prints the id
    curl -sf "$api/api/webhooks" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"url\": \"http://127.0.0.1:$receiver_port/hook\", \"events\": $1}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
unsubscribe() { curl -sf -X DELETE "$api/api/webhooks/$1" -H "Authorization: Bearer $token" >/dev/null; }
received() { curl -sf "http://127.0.0.1:$receiver_port/count"; }

declare -a rows
ids="$(mktemp)"
echo "== write cost: registrations and profile writes without and with a subscribed webhook"
for round in 1 2 3; do
    for mode in none subscribed; do
        hook=""
        [[ "$mode" == subscribed ]] && hook="$(subscribe '["user.registered", "user.updated"]')"
        out="$(wrk -t2 -c16 -d"${duration}s" --timeout 10s -s bench/lua/register.lua "$api/api/auth/register" -- "r${round}${mode:0:1}")"
        line="$(grep '^RESULT' <<<"$out")"
        echo "register.$mode.$round $line"
        rows+=("register:$mode $round $line")
        psql -qAt "$db_url" -c "SELECT id FROM users WHERE NOT is_superuser ORDER BY random() LIMIT 1000" > "$ids"
        out="$(wrk -t2 -c16 -d"${duration}s" --timeout 10s -s bench/lua/patch.lua "$api/api/users" -- "$token" "$ids")"
        line="$(grep '^RESULT' <<<"$out")"
        echo "patch.$mode.$round $line"
        rows+=("patch:$mode $round $line")
        [[ -n "$hook" ]] && unsubscribe "$hook"
    done
done

echo "== delivery rate: $events events queued at once"
declare -a rates
for endpoints in 1 4; do
    for round in 1 2 3; do
        hooks=()
        for _ in $(seq 1 "$endpoints"); do hooks+=("$(subscribe '["user.updated"]')"); done
        before="$(received)"
        start="$(date +%s.%N)"
        psql -q "$db_url" -c "INSERT INTO audit_events (id, at, type, outcome, details)
            SELECT gen_random_uuid(), (extract(epoch from clock_timestamp()) * 1000000)::bigint + g,
                   'user.updated', 'success', '{}' FROM generate_series(1, $events) g"
        want=$((before + events * endpoints))
        while [[ "$(received)" -lt "$want" ]]; do sleep 0.05; done
        end="$(date +%s.%N)"
        rate="$(python3 -c "print(round($events * $endpoints / ($end - $start)))")"
        echo "endpoints=$endpoints round=$round delivered/s=$rate"
        rates+=("$endpoints $round $rate")
        for hook in "${hooks[@]}"; do unsubscribe "$hook"; done
    done
done

python3 - "$results" "$duration" "$events" "${rows[@]}" -- "${rates[@]}" <<'PY'
import re, statistics, sys
path, duration, events = sys.argv[1], sys.argv[2], sys.argv[3]
rest = sys.argv[4:]
split = rest.index("--")
rows, rates = rest[:split], rest[split + 1:]
parsed = {}
out = [f"wrk, 2 threads, 16 connections, {duration} s per run, PostgreSQL; register: POST /api/auth/register (BCRYPT_COST=10); patch: PATCH /api/users/{{id}} full_name by a superuser.", "",
       "| Run | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|"]
for row in rows:
    mode, rnd, line = row.split(" ", 2)
    f = dict(kv.split("=") for kv in line.split()[1:])
    parsed.setdefault(mode, []).append(f)
    out.append(f"| {mode}.{rnd} | {f['rps']} | {f['p50_ms']} | {f['p99_ms']} | {f['errors']} |")
med = {m: {k: statistics.median(float(r[k]) for r in v) for k in ("rps", "p50_ms", "p99_ms")} for m, v in parsed.items()}
out += ["", "| Medians of 3 | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
for m in ("register:none", "register:subscribed", "patch:none", "patch:subscribed"):
    out.append(f"| {m} | {med[m]['rps']:.0f} | {med[m]['p50_ms']:.2f} | {med[m]['p99_ms']:.2f} |")
out.append("")
for w in ("register", "patch"):
    a, b = med[f"{w}:none"], med[f"{w}:subscribed"]
    out.append(f"{w} with a subscribed webhook (delivering meanwhile): {100 * b['rps'] / a['rps']:.0f} % of the requests per second, p50 {b['p50_ms'] / a['p50_ms']:.2f}×.")
out += ["",
        f"Delivery: {events} events written in one INSERT, per endpoint; seconds until the receiver had every one.", "",
        "| Endpoints | round | deliveries/s |", "|---:|---:|---:|"]
by = {}
for r in rates:
    e, rnd, rate = r.split()
    by.setdefault(e, []).append(int(rate))
    out.append(f"| {e} | {rnd} | {rate} |")
out += ["", "| Endpoints | median deliveries/s |", "|---:|---:|"]
for e, v in by.items():
    out.append(f"| {e} | {statistics.median(v):.0f} |")
open(path, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
