#!/usr/bin/env bash
# UserHub's benchmark: the release server on a fresh, seeded PostgreSQL
# database, loaded over loopback by wrk, next to the machine's own ceilings
# (pgbench running the same SQL; bcrypt verifications on every core).
#
#   bench/run.sh [--users N] [--duration SECONDS] [--connections C] [--only reads|writes|search|template|login|tokens|forgot|audit]
#
# Defaults: 10 000 users, 15 s per workload, 64 connections. Results go to
# bench/results/<users>.md (a table) and the console; `--only reads` runs
# only W1, W2 and W3 (three rounds, with the server's and PostgreSQL's CPU
# per request, next to pgbench's for the same SQL, into
# bench/results/reads-<users>.md; with BENCH_BASELINE_BIN, that build too,
# round by round, for a comparison within one run), `--only writes` the
# profile writes W10 (random users) and W11 (one's own row) next to W1 and
# W3, three rounds, into bench/results/writes-<users>.md, `--only search`
# the searches W5, W5b and a superuser's W5c, three rounds, into
# bench/results/search-<users>.md, `--only template` W3 and W10 against
# the FastAPI template of bench/template/ (in a venv under build/), three
# rounds, into bench/results/template-<users>.md, `--only login` W6
# against the bcrypt ceiling in turns, three rounds, into
# bench/results/login-<users>.md, `--only tokens`
# GET /api/auth/me with an access token (W2) and with a personal access
# token (W12), three rounds, into bench/results/tokens-<users>.md, and
# `--only forgot` only the forgot-password timing comparison (W8, into
# bench/results/forgot-<users>.md), and `--only audit` only the audit-trail
# listings over AUDIT_EVENTS (default 1 000 000) seeded events (W9, into
# bench/results/audit-<users>.md). Needs PostgreSQL at BENCH_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/postgres, a user that can
# create databases); installs wrk when missing, and aiosmtpd (the SMTP
# server the production-mode server mails to; it discards the mail) in a
# venv under build/.
set -euo pipefail
cd "$(dirname "$0")/.."

users=10000
duration=15
connections=64
only=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) only="$2"; shift 2 ;;
        --users) users="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

admin_url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="userhub_bench_${users}"
db_url="${admin_url%/*}/$db"
password="bench-Password-42!"
cores="$(nproc)"
export BENCH_LUA="$PWD/bench/lua"
work="$(mktemp -d)"
results="bench/results/${users}.md"
mkdir -p bench/results

need() { command -v "$1" >/dev/null; }
if ! need wrk; then
    echo "== installing wrk"
    sudo_cmd=(); [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get install -y -qq wrk >/dev/null
fi
need pgbench && need psql || { echo "error: pgbench and psql are required" >&2; exit 1; }

smtp_venv="build/smtp-venv"
if [[ ! -x "$smtp_venv/bin/python" ]] || ! cmp -s tests/smtp/requirements.txt "$smtp_venv/requirements.txt"; then
    echo "== installing aiosmtpd into $smtp_venv"
    python3 -m venv "$smtp_venv"
    "$smtp_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/smtp/requirements.txt
    cp tests/smtp/requirements.txt "$smtp_venv/requirements.txt"
fi

echo "== building (release)"
cargo build --release --quiet -p userhub-server
cargo build --release --quiet -p userhub-infrastructure --example bcrypt_ceiling
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# BENCH_SERVER_BIN runs another build (say, the one before a change) on the
# same database and load, for a comparison within one run.
server_bin="${BENCH_SERVER_BIN:-$target/release/userhub-server}"

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
smtp_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$smtp_venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Sink &
smtp_pid=$!
trap 'stop_server; kill "$smtp_pid" 2>/dev/null; rm -rf "$work"' EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
api="http://127.0.0.1:$port"

# Starts the server; writes the milliseconds from exec to the first 200 to
# $work/startup_ms.
start_server() {
    local started_ns ready_ns
    started_ns="$(date +%s%N)"
    env APP_ENV=production HOST=127.0.0.1 PORT="$port" \
        DATABASE_URL="$db_url" JWT_SECRET_KEY="bench-signing-key-of-at-least-32-bytes!" \
        BCRYPT_COST=12 AUTH_RATE_LIMIT_PER_MINUTE=0 LOGIN_MAX_FAILURES=0 USER_WRITE_LIMIT_PER_MINUTE=0 \
        DB_POOL_MAX_SIZE="${BENCH_POOL_SIZE:-32}" RUST_LOG=warn \
        SMTP_HOST=127.0.0.1 SMTP_PORT="$smtp_port" SMTP_TLS=none PUBLIC_URL=https://app.bench.example \
        MFA_ENCRYPTION_KEY="$(printf "ab%.0s" $(seq 32))" \
        "$server_bin" >"$work/server.log" 2>&1 &
    server_pid=$!
    until curl -fs "$api/health/live" >/dev/null 2>&1; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
        sleep 0.005
    done
    ready_ns="$(date +%s%N)"
    echo $(((ready_ns - started_ns) / 1000000)) > "$work/startup_ms"
}

echo "== fresh database $db with $users users"
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null
start_server  # applies the migrations
# One account made through the API gives the cost-12 hash every seeded user shares.
curl -fsS -X POST "$api/api/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"seed@bench.example\",\"username\":\"seed\",\"password\":\"$password\"}" >/dev/null
stop_server
psql "$db_url" -q <<SQL
ALTER TABLE users DISABLE TRIGGER USER;
INSERT INTO users (id, email, username, full_name, password_hash, is_active, is_superuser,
                   created_at, updated_at)
SELECT md5('user' || g)::uuid, 'user' || g || '@bench.example', 'user' || g,
       'Bench User ' || g, (SELECT password_hash FROM users WHERE username = 'seed'),
       g % 50 <> 0, g % 1000 = 0,
       now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval
FROM generate_series(0, $users - 1) AS g;
ALTER TABLE users ENABLE TRIGGER USER;
UPDATE user_counts c SET n = (SELECT count(*) FROM users u
    WHERE u.is_active = c.is_active AND u.is_superuser = c.is_superuser);
-- The search terms, as the trigger keeps them (a build with them off
-- users; earlier builds have no such table).
DO \$\$ BEGIN
    IF to_regclass('user_search') IS NOT NULL THEN
        TRUNCATE user_search;
        -- A user's three rows side by side, as the trigger writes them.
        INSERT INTO user_search (user_id, field, term)
            SELECT u.id, f.field, CASE f.field WHEN 1 THEN u.username
                                               WHEN 2 THEN coalesce(lower(u.full_name), '')
                                               ELSE u.email END
            FROM users u CROSS JOIN (VALUES (1::smallint), (2::smallint), (3::smallint)) AS f (field)
            ORDER BY u.created_at, u.id, f.field;
    END IF;
END \$\$;
VACUUM ANALYZE;
SQL
psql "$db_url" -Atc "SELECT id FROM users WHERE is_active ORDER BY random() LIMIT 2000" > "$work/ids"
audit_events="${AUDIT_EVENTS:-1000000}"
if [[ "$only" == audit ]]; then
    # Events spread over 60 days, about one per user every 14 hours; ids made
    # from the time as the server makes them (UUIDv7, microseconds in
    # rand_a). One event in a thousand is a rare type (`login.locked`).
    echo "== seeding $audit_events audit events"
    seed_started="$(date +%s)"
    psql "$db_url" -q <<SQL
UPDATE users SET is_superuser = true WHERE username = 'user1';
INSERT INTO audit_events (id, at, type, outcome, actor_id, subject_id, ip, user_agent, request_id, details)
SELECT (lpad(to_hex(us / 1000), 12, '0') || '7' || lpad(to_hex(us % 1000), 3, '0') || '8'
        || substr(md5(g::text), 1, 15))::uuid,
       us, kind, CASE WHEN kind IN ('login.failed', 'login.locked') THEN 'failure' ELSE 'success' END,
       CASE WHEN kind = 'login.failed' THEN NULL ELSE subject END, subject,
       '203.0.113.' || (g % 250), 'bench/1.0', md5(g::text), '{}'
FROM (SELECT g,
             (extract(epoch FROM now()) * 1000000)::bigint - g::bigint * (60::bigint * 86400000000 / $audit_events) AS us,
             md5('user' || (g % $users))::uuid AS subject,
             CASE WHEN g % 1000 = 0 THEN 'login.locked'
                  ELSE (ARRAY['login.succeeded', 'login.failed', 'session.ended', 'user.updated',
                              'password.changed', 'sessions.ended_all'])[1 + g % 6] END AS kind
      FROM generate_series(1, $audit_events) AS g) AS seeded;
VACUUM ANALYZE audit_events;
SQL
    echo "seeded in $(($(date +%s) - seed_started)) s; table and indexes: $(psql "$db_url" -Atc "SELECT pg_size_pretty(pg_total_relation_size('audit_events'))")"
fi

start_server
startup_ms="$(cat "$work/startup_ms")"
echo "== server ready in ${startup_ms} ms (up-to-date database)"

login() {
    curl -fsS -X POST "$api/api/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$password\"}"
}
token="$(login user1@bench.example | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
me_id="$(curl -fsS "$api/api/auth/me" -H "authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
session_id="$(python3 - "$token" <<'PY'
import base64, json, sys
payload = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])
PY
)"
# Every seeded username starts with "user": a term containing it is the
# worst case for trigram search (its trigrams are in every row). The second
# term is what a search for part of a name usually looks like.
search_term="${BENCH_SEARCH:-user4242}"
search_term_b="${BENCH_SEARCH_B:-4242}"

rss_reset() { echo 5 > "/proc/$server_pid/clear_refs"; }
rss_peak_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }

# CPU ticks (1/CLK_TCK s) of the server and of PostgreSQL so far.
tick_us=$((1000000 / $(getconf CLK_TCK)))
cpu_now() { python3 bench/cpu.py "$server_pid"; }
# cpu_per_request <before> <after> <requests>: "server_us postgres_us".
cpu_per_request() {
    python3 - "$1" "$2" "$3" "$tick_us" <<'PY'
import sys
before, after, requests, tick = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
parse = lambda s: dict(kv.split("=") for kv in s.split())
b, a = parse(before), parse(after)
per = lambda k: (int(a[k]) - int(b[k])) * tick / max(requests, 1)
print(f"{per('server'):.1f} {per('postgres'):.1f}")
PY
}

declare -A rps p50 p99 errs rss cpu_server cpu_pg
# run_wrk <name> <threads> <connections> <script> <path> [args...]
run_wrk() {
    local name="$1" threads="$2" conns="$3" script="$4" path="$5"
    shift 5
    rss_reset
    local out before after
    before="$(cpu_now)"
    out="$(wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 10s -s "bench/lua/$script" "$api$path" -- "$@")"
    after="$(cpu_now)"
    local line
    line="$(grep '^RESULT' <<<"$out")"
    read -r "cpu_server[$name]" "cpu_pg[$name]" < <(cpu_per_request "$before" "$after" "$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")")
    rps[$name]="$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")"
    p50[$name]="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")"
    p99[$name]="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")"
    errs[$name]="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")"
    rss[$name]="$(rss_peak_mb)"
    printf '%-4s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s  peak RSS %s MB  CPU/req: server %s us, PostgreSQL %s us\n' \
        "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" "${errs[$name]}" "${rss[$name]}" \
        "${cpu_server[$name]}" "${cpu_pg[$name]}"
}

# rounds_table <workload…>: every round's figures of the workloads, as a
# Markdown table.
rounds_table() {
    echo "| Run | req/s | p50 ms | p99 ms | errors | server CPU µs/req | PostgreSQL CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    local round w name
    for round in 1 2 3; do
        for w in "$@"; do
            name="$w.$round"
            echo "| $name | ${rps[$name]} | ${p50[$name]} | ${p99[$name]} | ${errs[$name]} | ${cpu_server[$name]} | ${cpu_pg[$name]} |"
        done
    done
}

# medians_py <workload…>: Python that sets `m[w]`, each workload's medians
# over its three rounds (rps, p50, p99, server, pg), for a mode's summary.
medians_py() {
    echo "import statistics as s"
    echo "runs = {w: {'rps': [], 'p50': [], 'p99': [], 'server': [], 'pg': []} for w in '$*'.split()}"
    local round w n
    for round in 1 2 3; do
        for w in "$@"; do
            n="$w.$round"
            echo "for k, v in [('rps', ${rps[$n]}), ('p50', ${p50[$n]}), ('p99', ${p99[$n]}), ('server', ${cpu_server[$n]}), ('pg', ${cpu_pg[$n]})]: runs['$w'][k].append(v)"
        done
    done
    echo "m = {w: {k: s.median(v) for k, v in d.items()} for w, d in runs.items()}"
}

# W8: forgot-password for addresses accounts have, then for addresses none
# has, twice in A B B A order so that drift over the run cancels out. The
# answers must not tell the two apart, in body or in time.
forgot_password_timing() {
    local order=(W8a W8b W8b W8a) prefix
    local -A round=()
    for name in "${order[@]}"; do
        round[$name]=$((${round[$name]:-0} + 1))
        [[ "$name" == W8a ]] && prefix=user || prefix=nobody
        run_wrk "$name.${round[$name]}" 2 8 forgot.lua /api/auth/forgot-password "$prefix" "$users"
    done
    local queued
    queued="$(psql "$db_url" -Atc "SELECT count(*) FILTER (WHERE completed_at > 0), count(*) FILTER (WHERE completed_at = 0 AND failed_at = 0), count(*) FILTER (WHERE failed_at > 0) FROM mail_jobs")"
    python3 - "$queued" "${p50[W8a.1]}" "${p50[W8a.2]}" "${p50[W8b.1]}" "${p50[W8b.2]}" \
        "${rps[W8a.1]}" "${rps[W8a.2]}" "${rps[W8b.1]}" "${rps[W8b.2]}" \
        "${p99[W8a.1]}" "${p99[W8a.2]}" "${p99[W8b.1]}" "${p99[W8b.2]}" \
        "${errs[W8a.1]}" "${errs[W8a.2]}" "${errs[W8b.1]}" "${errs[W8b.2]}" <<'PY'
import statistics, sys
queued, *v = sys.argv[1:]
f = [float(x) for x in v]
p50a, p50b = statistics.median(f[0:2]), statistics.median(f[2:4])
print(f"| W8a POST /api/auth/forgot-password, addresses of accounts | {statistics.median(f[4:6]):.1f} | {p50a:.2f} | {max(f[8:10]):.2f} | {int(f[12] + f[13])} |")
print(f"| W8b POST /api/auth/forgot-password, addresses of nobody | {statistics.median(f[6:8]):.1f} | {p50b:.2f} | {max(f[10:12]):.2f} | {int(f[14] + f[15])} |")
print()
print(f"p50 of W8a over W8b: {p50a / p50b * 100:.0f} %; "
      f"mail jobs done / pending / given up at the end: {queued.replace('|', ' / ')}")
PY
}

# pgbench_cpu <name> <script> [args...]: PostgreSQL's CPU per transaction
# of the same SQL run by pgbench (prepared statements, same concurrency).
declare -A pgb_tps pgb_cpu
pgbench_cpu() {
    local name="$1" script="$2" before after out count
    shift 2
    before="$(cpu_now)"
    out="$(pgbench -n -M prepared -c "$connections" -j "$cores" -T "$duration" -f "bench/sql/$script" "$@" "$db_url" 2>/dev/null)"
    after="$(cpu_now)"
    count="$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out" | cut -d/ -f1)"
    pgb_tps[$name]="$(awk '/^tps = / {printf "%.1f", $3}' <<<"$out")"
    read -r _ "pgb_cpu[$name]" < <(cpu_per_request "$before" "$after" "$count")
    printf 'pgbench %-3s %10s tps  PostgreSQL CPU/transaction %s us\n' "$name" "${pgb_tps[$name]}" "${pgb_cpu[$name]}"
}

# reads_medians <tag> <label>: the medians of three rounds of W1–W3 run
# with <tag> in their names, as a table.
reads_medians() {
    local t="$1" label="$2"
    python3 - <<PY
import statistics as s
med = s.median
tps = {w: med(v) for w, v in {"W1": [${rps[W1$t.1]}, ${rps[W1$t.2]}, ${rps[W1$t.3]}],
                              "W2": [${rps[W2$t.1]}, ${rps[W2$t.2]}, ${rps[W2$t.3]}],
                              "W3": [${rps[W3$t.1]}, ${rps[W3$t.2]}, ${rps[W3$t.3]}]}.items()}
server = {w: med(v) for w, v in {"W1": [${cpu_server[W1$t.1]}, ${cpu_server[W1$t.2]}, ${cpu_server[W1$t.3]}],
                                 "W2": [${cpu_server[W2$t.1]}, ${cpu_server[W2$t.2]}, ${cpu_server[W2$t.3]}],
                                 "W3": [${cpu_server[W3$t.1]}, ${cpu_server[W3$t.2]}, ${cpu_server[W3$t.3]}]}.items()}
pg = {w: med(v) for w, v in {"W2": [${cpu_pg[W2$t.1]}, ${cpu_pg[W2$t.2]}, ${cpu_pg[W2$t.3]}],
                             "W3": [${cpu_pg[W3$t.1]}, ${cpu_pg[W3$t.2]}, ${cpu_pg[W3$t.3]}]}.items()}
pgbench = {"W2": ${pgb_cpu[W2]}, "W3": ${pgb_cpu[W3]}}
print("$label")
print()
print("| Workload (medians of 3) | req/s | server CPU µs/req | over the W1 floor | PostgreSQL CPU µs/req | over pgbench's |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| W1 GET /health/live | {tps['W1']:.0f} | {server['W1']:.1f} | 1.0× | | |")
for w, what in [("W2", "GET /api/auth/me"), ("W3", "GET /api/users/{id}")]:
    print(f"| {w} {what} | {tps[w]:.0f} | {server[w]:.1f} | {server[w] / server['W1']:.1f}× | {pg[w]:.1f} | {pg[w] / pgbench[w]:.1f}× |")
print()
PY
}

if [[ "$only" == reads ]]; then
    # BENCH_BASELINE_BIN: another build (say, the one before a change) run
    # in the same rounds, each round one build then the other, so that the
    # machine's drift falls on both alike.
    builds=("$server_bin")
    tags=("")
    if [[ -n "${BENCH_BASELINE_BIN:-}" ]]; then
        builds=("$BENCH_BASELINE_BIN" "$server_bin")
        tags=("base" "")
    fi
    echo "== authenticated reads: ${duration}s each, $connections connections, three rounds of W1 W2 W3"
    for round in 1 2 3; do
        for i in "${!builds[@]}"; do
            if [[ ${#builds[@]} -gt 1 ]]; then
                stop_server
                server_bin="${builds[$i]}"
                start_server
            fi
            t="${tags[$i]}"
            run_wrk "W1$t.$round" 2 "$connections" plain.lua /health/live
            run_wrk "W2$t.$round" 2 "$connections" get.lua /api/auth/me "$token" /api/auth/me
            run_wrk "W3$t.$round" 2 "$connections" user_by_id.lua /api/users "$token" "$work/ids"
        done
    done
    pgbench_cpu W2 auth.sql -D uid="$me_id" -D sid="$session_id"
    pgbench_cpu W3 user_by_id.sql -D uid="$me_id" -D sid="$session_id" -D users="$users"
    {
        echo "### authenticated reads, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, three rounds of W1 W2 W3; pool ${BENCH_POOL_SIZE:-32}."
        echo "CPU per request: the server process's and PostgreSQL's (every backend, and"
        echo "what the postmaster reaped), over the run, divided by the requests served."
        [[ ${#builds[@]} -gt 1 ]] && echo "Runs tagged \`base\` are BENCH_BASELINE_BIN's, in the same rounds."
        echo
        echo "| Run | req/s | p50 ms | p99 ms | errors | peak RSS MB | server CPU µs/req | PostgreSQL CPU µs/req |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for round in 1 2 3; do
            for t in "${tags[@]}"; do
                for w in W1 W2 W3; do
                    name="$w$t.$round"
                    echo "| $name | ${rps[$name]} | ${p50[$name]} | ${p99[$name]} | ${errs[$name]} | ${rss[$name]} | ${cpu_server[$name]} | ${cpu_pg[$name]} |"
                done
            done
        done
        echo
        echo "pgbench, the same SQL prepared: W2 ${pgb_tps[W2]} tps at ${pgb_cpu[W2]} µs of PostgreSQL CPU per transaction; W3 ${pgb_tps[W3]} tps at ${pgb_cpu[W3]} µs."
        echo
        if [[ ${#builds[@]} -gt 1 ]]; then
            reads_medians base "Baseline (BENCH_BASELINE_BIN):"
            reads_medians "" "This build:"
        else
            reads_medians "" ""
        fi
    } | tee "bench/results/reads-${users}.md"
    exit 0
fi

if [[ "$only" == writes ]]; then
    # W10: a superuser's profile writes to random users; W11: everyone's
    # own row (one account, one hot row); next to W1 (the HTTP floor) and
    # W3 (a read), three rounds each.
    psql "$db_url" -qc "UPDATE users SET is_superuser = true WHERE username = 'user1'"
    echo "$me_id" > "$work/me"
    echo "== profile writes: ${duration}s each, $connections connections, three rounds of W1 W3 W10 W11"
    for round in 1 2 3; do
        run_wrk "W1.$round" 2 "$connections" plain.lua /health/live
        run_wrk "W3.$round" 2 "$connections" user_by_id.lua /api/users "$token" "$work/ids"
        run_wrk "W10.$round" 2 "$connections" patch.lua /api/users "$token" "$work/ids"
        run_wrk "W11.$round" 2 "$connections" patch.lua /api/users "$token" "$work/me"
    done
    {
        echo "### profile writes, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, three rounds; pool ${BENCH_POOL_SIZE:-32}."
        echo "W10: PATCH /api/users/{id} {full_name} by a superuser to random users;"
        echo "W11: the same to one's own row, one account (one hot row)."
        echo
        rounds_table W1 W3 W10 W11
        echo
        python3 - <<PY
$(medians_py W1 W3 W10 W11)
print("| Workload (medians of 3) | req/s | p99 ms | server CPU µs/req | over W3's | PostgreSQL CPU µs/req | over W3's |")
print("|---|---:|---:|---:|---:|---:|---:|")
for w, what in [("W1", "GET /health/live"), ("W3", "GET /api/users/{id}"),
                ("W10", "PATCH /api/users/{id}, random users"), ("W11", "PATCH /api/users/{own id}, one row")]:
    r = m[w]
    over_s = f"{r['server'] / m['W3']['server']:.1f}×" if w != "W1" else ""
    over_p = f"{r['pg'] / m['W3']['pg']:.1f}×" if w not in ("W1",) and m['W3']['pg'] else ""
    print(f"| {w} {what} | {r['rps']:.0f} | {r['p99']:.1f} | {r['server']:.1f} | {over_s} | {r['pg']:.1f} | {over_p} |")
print()
print(f"One hot row against random rows: {m['W11']['rps'] / m['W10']['rps'] * 100:.0f} % of the writes per second.")
PY
    } | tee "bench/results/writes-${users}.md"
    exit 0
fi

if [[ "$only" == search ]]; then
    # W5 and W5b: an ordinary user's searches (username and full name);
    # W5c: a superuser's, which also searches e-mail addresses. Three
    # rounds each, with the server's and PostgreSQL's CPU per request.
    psql "$db_url" -qc "UPDATE users SET is_superuser = true WHERE username = 'user2'"
    admin_token="$(login user2@bench.example | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    echo "== searches: ${duration}s each, $connections connections, three rounds of W5 W5b W5c"
    for round in 1 2 3; do
        run_wrk "W5.$round" 2 "$connections" get.lua /api/users "$token" "/api/users?search=$search_term"
        run_wrk "W5b.$round" 2 "$connections" get.lua /api/users "$token" "/api/users?search=$search_term_b"
        run_wrk "W5c.$round" 2 "$connections" get.lua /api/users "$admin_token" "/api/users?search=$search_term_b"
    done
    {
        echo "### searches, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, three rounds; pool ${BENCH_POOL_SIZE:-32}."
        echo "W5: GET /api/users?search=$search_term and W5b: ?search=$search_term_b by an ordinary user"
        echo "(usernames and full names); W5c: ?search=$search_term_b by a superuser (e-mail addresses too)."
        echo
        rounds_table W5 W5b W5c
        echo
        python3 - <<PY
$(medians_py W5 W5b W5c)
print("| Workload (medians of 3) | req/s | p50 ms | p99 ms | server CPU µs/req | PostgreSQL CPU µs/req |")
print("|---|---:|---:|---:|---:|---:|")
for w, what in [("W5", "?search=$search_term"), ("W5b", "?search=$search_term_b"), ("W5c", "?search=$search_term_b, superuser")]:
    print(f"| {w} GET /api/users{what} | {m[w]['rps']:.0f} | {m[w]['p50']:.2f} | {m[w]['p99']:.2f} | {m[w]['server']:.1f} | {m[w]['pg']:.1f} |")
PY
    } | tee "bench/results/search-${users}.md"
    exit 0
fi

if [[ "$only" == template ]]; then
    # The FastAPI template of bench/template/ on its own database with the
    # same users, ids and password hash, beside UserHub, one loaded at a
    # time: W3 (a read) and W10 (a superuser's PATCH of random users'
    # full_name), three rounds of UserHub then the template.
    template_venv="build/template-venv"
    if [[ ! -x "$template_venv/bin/uvicorn" ]] || ! cmp -s bench/template/requirements.txt "$template_venv/requirements.txt"; then
        echo "== installing the template's packages into $template_venv"
        python3 -m venv "$template_venv"
        "$template_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/template/requirements.txt
        cp bench/template/requirements.txt "$template_venv/requirements.txt"
    fi
    tdb="userhub_bench_template_${users}"
    tdb_url="${admin_url%/*}/$tdb"
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $tdb WITH (FORCE)" >/dev/null
    psql "$admin_url" -qc "CREATE DATABASE $tdb" >/dev/null
    export TEMPLATE_DATABASE_URL="postgresql+asyncpg://${tdb_url#postgres://}"
    (cd bench/template && "../../$template_venv/bin/python" app.py create)
    seed_hash="$(psql "$db_url" -Atc "SELECT password_hash FROM users WHERE username = 'seed'")"
    psql "$tdb_url" -q <<SQL
INSERT INTO users (id, email, username, full_name, hashed_password, is_active, is_superuser,
                   created_at, updated_at)
SELECT md5('user' || g)::uuid, 'user' || g || '@bench.example', 'user' || g,
       'Bench User ' || g, '$seed_hash', g % 50 <> 0, g % 1000 = 0 OR g = 1,
       now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval
FROM generate_series(0, $users - 1) AS g;
VACUUM ANALYZE users;
SQL
    psql "$db_url" -qc "UPDATE users SET is_superuser = true WHERE username = 'user1'"
    tport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    (cd bench/template && exec "../../$template_venv/bin/uvicorn" app:app --host 127.0.0.1 --port "$tport" \
        --workers "$cores" --no-access-log --log-level warning) &
    template_pid=$!
    trap 'kill "$template_pid" 2>/dev/null; stop_server; kill "$smtp_pid" 2>/dev/null; rm -rf "$work"' EXIT
    tapi="http://127.0.0.1:$tport"
    until curl -fs -o /dev/null "$tapi/openapi.json"; do
        kill -0 "$template_pid" 2>/dev/null || { echo "the template did not start" >&2; exit 1; }
        sleep 0.2
    done
    ttoken="$(curl -fsS -X POST "$tapi/api/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"user1@bench.example\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    userhub_api="$api" userhub_pid="$server_pid"
    echo "== UserHub and the FastAPI template: ${duration}s each, $connections connections, three rounds of W3 W10"
    for round in 1 2 3; do
        api="$userhub_api" server_pid="$userhub_pid"
        run_wrk "W3.$round" 2 "$connections" user_by_id.lua /api/users "$token" "$work/ids"
        run_wrk "W10.$round" 2 "$connections" patch.lua /api/users "$token" "$work/ids"
        api="$tapi" server_pid="$template_pid"
        run_wrk "T3.$round" 2 "$connections" user_by_id.lua /api/users "$ttoken" "$work/ids"
        run_wrk "T10.$round" 2 "$connections" patch.lua /api/users "$ttoken" "$work/ids"
    done
    api="$userhub_api" server_pid="$userhub_pid"
    {
        echo "### UserHub and the FastAPI template, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, three rounds; UserHub's pool ${BENCH_POOL_SIZE:-32},"
        echo "the template's $cores workers × 16 connections. W3/T3: GET /api/users/{id} of random users;"
        echo "W10/T10: a superuser's PATCH /api/users/{id} {full_name} to random users. Server CPU: the"
        echo "template's every worker process."
        echo
        rounds_table W3 W10 T3 T10
        echo
        python3 - <<PY
$(medians_py W3 W10 T3 T10)
print("| Medians of 3 | UserHub req/s | template req/s | UserHub over template | p99 ms (UserHub, template) | server CPU µs/req (UserHub, template) |")
print("|---|---:|---:|---:|---|---|")
for (u, t), what in [(("W3", "T3"), "GET /api/users/{id}"), (("W10", "T10"), "PATCH /api/users/{id}, random users")]:
    print(f"| {what} | {m[u]['rps']:.0f} | {m[t]['rps']:.0f} | {m[u]['rps'] / m[t]['rps']:.1f}× | "
          f"{m[u]['p99']:.1f}, {m[t]['p99']:.1f} | {m[u]['server']:.1f}, {m[t]['server']:.1f} |")
PY
    } | tee "bench/results/template-${users}.md"
    exit 0
fi

if [[ "$only" == login ]]; then
    # W6 against the machine's bcrypt ceiling, measured in turns in the same
    # run (three rounds of the ceiling, then W6), so that both see the same
    # machine.
    login_seconds=$((duration < 20 ? 20 : duration))
    echo "== logins against bcrypt: ${login_seconds}s each, $((cores * 4)) connections, three rounds"
    declare -A ceiling
    saved_duration="$duration"
    duration="$login_seconds"
    for round in 1 2 3; do
        ceiling[$round]="$("$target/release/examples/bcrypt_ceiling" 12 "$login_seconds" |
            sed -E 's/verifications_per_second=([0-9.]+).*/\1/')"
        echo "bcrypt ceiling ${ceiling[$round]}/s"
        run_wrk "W6.$round" 2 $((cores * 4)) login.lua /api/auth/login "$users" "$password"
    done
    duration="$saved_duration"
    {
        echo "### logins against the bcrypt ceiling, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${login_seconds} s per run, $((cores * 4)) connections, BCRYPT_COST=12; the ceiling is bcrypt"
        echo "verifications per second at cost 12 on every core (the \`bcrypt_ceiling\` example), run just before each W6."
        echo
        echo "| Run | bcrypt/s | W6 req/s | of the ceiling | p50 ms | p99 ms | errors | peak RSS MB |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for round in 1 2 3; do
            n="W6.$round"
            echo "| $round | ${ceiling[$round]} | ${rps[$n]} | $(python3 -c "print(f'{${rps[$n]} / ${ceiling[$round]} * 100:.1f} %')") | ${p50[$n]} | ${p99[$n]} | ${errs[$n]} | ${rss[$n]} |"
        done
        echo
        python3 - <<PY
import statistics as s
c = [${ceiling[1]}, ${ceiling[2]}, ${ceiling[3]}]
w = [${rps[W6.1]}, ${rps[W6.2]}, ${rps[W6.3]}]
print(f"Medians: {s.median(w):.2f} logins/s against {s.median(c):.2f} bcrypt/s, {s.median(w) / s.median(c) * 100:.1f} % of the ceiling "
      f"(per round: {', '.join(f'{a / b * 100:.1f} %' for a, b in zip(w, c))}).")
PY
    } | tee "bench/results/login-${users}.md"
    exit 0
fi

if [[ "$only" == tokens ]]; then
    # W12: the same read as W2, authenticated by a personal access token.
    pat="$(curl -fsS -X POST "$api/api/auth/tokens" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' \
        -d "{\"name\":\"bench\",\"scopes\":[\"profile:read\"],\"current_password\":\"$password\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    echo "== GET /api/auth/me by access token and by personal access token: ${duration}s each, $connections connections, three rounds"
    for round in 1 2 3; do
        run_wrk "W2.$round" 2 "$connections" get.lua /api/auth/me "$token" /api/auth/me
        run_wrk "W12.$round" 2 "$connections" get.lua /api/auth/me "$pat" /api/auth/me
    done
    {
        echo "### personal access tokens, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, three rounds; pool ${BENCH_POOL_SIZE:-32}."
        echo "W2: GET /api/auth/me with an access token; W12: the same with a personal access token."
        echo
        rounds_table W2 W12
        echo
        python3 - <<PY
$(medians_py W2 W12)
print("| Workload (medians of 3) | req/s | server CPU µs/req | PostgreSQL CPU µs/req |")
print("|---|---:|---:|---:|")
for w, what in [("W2", "GET /api/auth/me, access token"), ("W12", "GET /api/auth/me, personal access token")]:
    print(f"| {w} {what} | {m[w]['rps']:.0f} | {m[w]['server']:.1f} | {m[w]['pg']:.1f} |")
print()
print(f"A token's read against an access token's: {m['W12']['rps'] / m['W2']['rps'] * 100:.0f} % of the requests per second, "
      f"{m['W12']['server'] / m['W2']['server']:.2f}× the server CPU, {m['W12']['pg'] / m['W2']['pg']:.2f}× PostgreSQL's.")
PY
    } | tee "bench/results/tokens-${users}.md"
    exit 0
fi

if [[ "$only" == audit ]]; then
    echo "== audit listings over $audit_events events: ${duration}s each, $connections connections"
    subject="$(psql "$db_url" -Atc "SELECT md5('user4242')::uuid")"
    window_since="$(psql "$db_url" -Atc "SELECT to_char((now() - interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")"
    window_until="$(psql "$db_url" -Atc "SELECT to_char((now() - interval '29 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")"
    # A page deep in the listing: the cursor after 20 pages of 50.
    deep="/api/audit-events?limit=50"
    for _ in $(seq 1 20); do
        cursor="$(curl -fsS "$api$deep" -H "authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')"
        deep="/api/audit-events?limit=50&cursor=$cursor"
    done
    run_wrk W9a 2 "$connections" get.lua /api/audit-events "$token" "/api/audit-events?limit=50"
    run_wrk W9b 2 "$connections" get.lua /api/audit-events "$token" "/api/audit-events?user_id=$subject&limit=50"
    run_wrk W9c 2 "$connections" get.lua /api/audit-events "$token" "/api/audit-events?type=login.locked&limit=50"
    run_wrk W9d 2 "$connections" get.lua /api/audit-events "$token" "/api/audit-events?since=$window_since&until=$window_until&limit=50"
    run_wrk W9e 2 "$connections" get.lua /api/audit-events "$token" "$deep"
    run_wrk W9f 2 "$connections" get.lua /api/auth/events "$token" "/api/auth/events?limit=50"
    run_wrk W2 2 "$connections" get.lua /api/auth/me "$token" /api/auth/me
    {
        echo "### audit listings, $users users, $audit_events events — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, $connections connections, pages of 50; pool ${BENCH_POOL_SIZE:-32}. W2 (\`/api/auth/me\`) in the same run for scale."
        echo
        echo "| Workload | req/s | p50 ms | p99 ms | errors |"
        echo "|---|---:|---:|---:|---:|"
        echo "| W9a GET /api/audit-events (newest) | ${rps[W9a]} | ${p50[W9a]} | ${p99[W9a]} | ${errs[W9a]} |"
        echo "| W9b GET /api/audit-events?user_id= (one user's ~$((audit_events / users))) | ${rps[W9b]} | ${p50[W9b]} | ${p99[W9b]} | ${errs[W9b]} |"
        echo "| W9c GET /api/audit-events?type=login.locked (1 in 1 000) | ${rps[W9c]} | ${p50[W9c]} | ${p99[W9c]} | ${errs[W9c]} |"
        echo "| W9d GET /api/audit-events?since=&until= (one day, 30 days back) | ${rps[W9d]} | ${p50[W9d]} | ${p99[W9d]} | ${errs[W9d]} |"
        echo "| W9e GET /api/audit-events?cursor= (page 21) | ${rps[W9e]} | ${p50[W9e]} | ${p99[W9e]} | ${errs[W9e]} |"
        echo "| W9f GET /api/auth/events (own) | ${rps[W9f]} | ${p50[W9f]} | ${p99[W9f]} | ${errs[W9f]} |"
        echo "| W2 GET /api/auth/me | ${rps[W2]} | ${p50[W2]} | ${p99[W2]} | ${errs[W2]} |"
    } | tee "bench/results/audit-${users}.md"
    exit 0
fi

if [[ "$only" == forgot ]]; then
    echo "== forgot-password timing: ${duration}s per run, 8 connections"
    {
        echo "### forgot-password timing, $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "${duration} s per run, 8 connections, runs in A B B A order; req/s and p50 are the medians of the two runs of each kind, p99 the higher."
        echo
        echo "| Workload | req/s | p50 ms | p99 ms | errors |"
        echo "|---|---:|---:|---:|---:|"
        forgot_password_timing | grep -v '^W8'
    } | tee "bench/results/forgot-${users}.md"
    exit 0
fi

echo "== workloads: ${duration}s each, $connections connections"
run_wrk W1 2 "$connections" plain.lua /health/live
run_wrk W2 2 "$connections" get.lua /api/auth/me "$token" /api/auth/me
run_wrk W3 2 "$connections" user_by_id.lua /api/users "$token" "$work/ids"
run_wrk W4 2 "$connections" get.lua /api/users "$token" "/api/users?limit=10"
run_wrk W5 2 "$connections" get.lua /api/users "$token" "/api/users?search=$search_term"
run_wrk W5b 2 "$connections" get.lua /api/users "$token" "/api/users?search=$search_term_b"
# W6 alone, then again with a steady W2 probe (50 req/s) alongside: logins
# must not starve everything else. Logins take hundreds of milliseconds, so
# these runs are longer and use fewer connections (4 per core) than the rest.
login_seconds=$((duration < 20 ? 20 : duration))
duration_saved="$duration"
duration="$login_seconds"
run_wrk W6 2 $((cores * 4)) login.lua /api/auth/login "$users" "$password"
python3 bench/probe.py "$api" "$token" /api/auth/me "$login_seconds" 50 > "$work/w2-during-w6" &
side=$!
run_wrk W6+W2 2 $((cores * 4)) login.lua /api/auth/login "$users" "$password"
wait "$side"
# W6 again while one account floods change-password with wrong current
# passwords on 8 connections: its failures lock it and its hashing budget
# runs out, so the other users' logins keep their throughput.
flood_token="$(login user2@bench.example | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
wrk -t1 -c8 -d"${login_seconds}s" --timeout 10s -s bench/lua/change_password.lua \
    "$api/api/auth/change-password" -- "$flood_token" > "$work/flood" 2>&1 &
flood=$!
run_wrk W6+flood 2 $((cores * 4)) login.lua /api/auth/login "$users" "$password"
wait "$flood"
flood_line="$(grep '^RESULT' "$work/flood")"
echo "change-password flood during W6: $flood_line"
duration="$duration_saved"
side_line="$(grep '^RESULT' "$work/w2-during-w6")"
echo "W2 probe during W6: $side_line"
# W7: chains of refreshes, one connection per chain.
for i in $(seq 1 8); do
    login "user$((i + 10))@bench.example" | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
done > "$work/refresh_tokens"
run_wrk W7 8 8 refresh.lua /api/auth/refresh "$work/refresh_tokens"
stop_server

echo "== ceilings"
# The SQL each workload issues (taken from PostgreSQL's statement log; see
# bench/sql/), run by pgbench with prepared statements at the same
# concurrency, as the database ceiling.
pgb() {
    local script="$1"
    shift
    pgbench -n -M prepared -c "$connections" -j "$cores" -T "$duration" -f "bench/sql/$script" "$@" "$db_url" 2>/dev/null |
        awk '/^tps = / {print $3}'
}
ceil_w2="$(pgb auth.sql -D uid="$me_id" -D sid="$session_id")"
ceil_w3="$(pgb user_by_id.sql -D uid="$me_id" -D sid="$session_id" -D users="$users")"
ceil_w4="$(pgb list.sql -D uid="$me_id" -D sid="$session_id")"
# A generic plan cannot use the trigram indexes for `LIKE $1`; the server's
# statements run with custom plans, so the ceiling does too.
ceil_w5="$(PGOPTIONS='-c plan_cache_mode=force_custom_plan' pgb search.sql -D uid="$me_id" -D sid="$session_id" -D pattern="%${search_term}%")"
ceil_w5b="$(PGOPTIONS='-c plan_cache_mode=force_custom_plan' pgb search.sql -D uid="$me_id" -D sid="$session_id" -D pattern="%${search_term_b}%")"
ceil_w6="$(cargo run --release --quiet -p userhub-infrastructure --example bcrypt_ceiling -- 12 "$duration" |
    sed -E 's/verifications_per_second=([0-9.]+).*/\1/')"
echo "pgbench tps: W2 $ceil_w2, W3 $ceil_w3, W4 $ceil_w4, W5 $ceil_w5, W5b $ceil_w5b; bcrypt/s (cost 12, $cores threads): $ceil_w6"

ratio() { python3 -c "print(f'{float($1) / float($2) * 100:.0f} %')"; }
round() { python3 -c "print(f'{float($1):.0f}')"; }
for v in ceil_w2 ceil_w3 ceil_w4 ceil_w5 ceil_w5b; do printf -v "$v" '%s' "$(round "${!v}")"; done
{
    echo "### $users users — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Server ready ${startup_ms} ms after start (up-to-date database). ${duration} s per workload, $connections connections (W6: ${login_seconds} s, $((cores * 4)) connections; W7: 8 sequential chains). Pool: ${BENCH_POOL_SIZE:-32} connections."
    echo
    echo "| Workload | req/s | p50 ms | p99 ms | errors | peak RSS MB | ceiling | ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    echo "| W1 GET /health/live | ${rps[W1]} | ${p50[W1]} | ${p99[W1]} | ${errs[W1]} | ${rss[W1]} | — | — |"
    echo "| W2 GET /api/auth/me | ${rps[W2]} | ${p50[W2]} | ${p99[W2]} | ${errs[W2]} | ${rss[W2]} | $ceil_w2 (pgbench) | $(ratio "${rps[W2]}" "$ceil_w2") |"
    echo "| W3 GET /api/users/{id} | ${rps[W3]} | ${p50[W3]} | ${p99[W3]} | ${errs[W3]} | ${rss[W3]} | $ceil_w3 (pgbench) | $(ratio "${rps[W3]}" "$ceil_w3") |"
    echo "| W4 GET /api/users?limit=10 | ${rps[W4]} | ${p50[W4]} | ${p99[W4]} | ${errs[W4]} | ${rss[W4]} | $ceil_w4 (pgbench) | $(ratio "${rps[W4]}" "$ceil_w4") |"
    echo "| W5 GET /api/users?search=$search_term | ${rps[W5]} | ${p50[W5]} | ${p99[W5]} | ${errs[W5]} | ${rss[W5]} | $ceil_w5 (pgbench) | $(ratio "${rps[W5]}" "$ceil_w5") |"
    echo "| W5b GET /api/users?search=$search_term_b | ${rps[W5b]} | ${p50[W5b]} | ${p99[W5b]} | ${errs[W5b]} | ${rss[W5b]} | $ceil_w5b (pgbench) | $(ratio "${rps[W5b]}" "$ceil_w5b") |"
    echo "| W6 POST /api/auth/login | ${rps[W6]} | ${p50[W6]} | ${p99[W6]} | ${errs[W6]} | ${rss[W6]} | $ceil_w6 (bcrypt/s) | $(ratio "${rps[W6]}" "$ceil_w6") |"
    echo "| W6 with the W2 probe | ${rps[W6+W2]} | ${p50[W6+W2]} | ${p99[W6+W2]} | ${errs[W6+W2]} | ${rss[W6+W2]} | $ceil_w6 (bcrypt/s) | $(ratio "${rps[W6+W2]}" "$ceil_w6") |"
    echo "| W6 during a wrong change-password flood from one account | ${rps[W6+flood]} | ${p50[W6+flood]} | ${p99[W6+flood]} | ${errs[W6+flood]} | ${rss[W6+flood]} | ${rps[W6]} (W6 alone) | $(ratio "${rps[W6+flood]}" "${rps[W6]}") |"
    echo "| W7 POST /api/auth/refresh | ${rps[W7]} | ${p50[W7]} | ${p99[W7]} | ${errs[W7]} | ${rss[W7]} | — | — |"
    echo
    echo "W2 probe (50 req/s on one connection) during W6: \`$side_line\`"
    echo
    echo "Wrong change-password flood (8 connections, one account) during W6: \`$flood_line\`"
} | tee "$results"
