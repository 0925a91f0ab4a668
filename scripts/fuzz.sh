#!/usr/bin/env bash
# Schema fuzzing: Schemathesis generates requests from the served
# /openapi.json and runs every check (no server errors; status codes,
# content types, headers and bodies as documented; invalid input rejected;
# auth enforced) against a real server, authenticated as a superuser.
#
# Bounded: FUZZ_EXAMPLES (default 30) cases per operation and phase.
# Uses a fresh PostgreSQL database when one is reachable (TEST_DATABASE_URL,
# as in scripts/test.sh), else an SQLite file. Installs Schemathesis in a
# venv under build/. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh

examples="${FUZZ_EXAMPLES:-30}"
venv="build/fuzz-venv"
if [[ ! -x "$venv/bin/st" ]] || ! cmp -s fuzz/requirements.txt "$venv/requirements.txt"; then
    echo "== installing Schemathesis into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r fuzz/requirements.txt
    cp fuzz/requirements.txt "$venv/requirements.txt"
fi

pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database=""
cleanup() {
    stop_server
    if [[ -n "$database" ]]; then
        psql "$pg_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "${workdir:-}"
}
trap cleanup EXIT
workdir="$(mktemp -d)"

if command -v psql >/dev/null && psql "$pg_url" -qc 'SELECT 1' >/dev/null 2>&1; then
    database="userhub_fuzz_$$"
    psql "$pg_url" -qc "CREATE DATABASE $database" >/dev/null
    db_url="${pg_url%/*}/$database"
    echo "== fuzzing against PostgreSQL ($database)"
else
    db_url="sqlite://$workdir/fuzz.db?mode=rwc"
    echo "== fuzzing against SQLite (PostgreSQL unreachable)"
fi

start_server "$db_url"
echo "== server at $SERVER_URL; $examples examples per operation"

mkdir -p build
# Every check but use_after_free: DELETE /api/users/{id} is a soft delete by
# the contract. The user stays readable to superusers (is_active false) and
# POST .../restore brings it back, so the 200 this superuser run gets after
# a DELETE is the documented answer. (The HTTP suite tests the 404 that
# ordinary users get.)
(
    cd fuzz
    USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
        SCHEMATHESIS_HOOKS=hooks \
        "../$venv/bin/st" --config-file schemathesis.toml run "$SERVER_URL/openapi.json" \
        --checks all \
        --exclude-checks use_after_free \
        --max-examples "$examples" \
        --request-timeout 30 \
        --report junit --report-dir ../build/fuzz-report \
        "$@"
)
