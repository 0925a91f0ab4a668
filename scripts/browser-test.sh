#!/usr/bin/env bash
# Browser tests in headless Chromium (Debian's package, driven by
# playwright-core): Swagger UI's OAuth2 password flow at /docs, CORS as a
# browser enforces it, a provider sign-in (a real oidc-provider) run by
# a front end on its own origin, passkeys with Chromium's virtual
# authenticator, and the console at /admin/ on PostgreSQL (with axe-core,
# pyotp and a second oidc-provider). Installs Chromium, the npm packages
# and the Python venv when missing. Screenshots go to build/browser/;
# CONSOLE_SCREENSHOTS=docs/console refreshes the documentation's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh
source scripts/lib/python.sh

if [[ ! -x /usr/bin/chromium ]]; then
    echo "== installing Debian's chromium"
    sudo_cmd=()
    [[ "$(id -u)" -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { echo "error: Node.js is required" >&2; exit 1; }

echo "== npm packages"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
ensure_test_python

# The console's files, as the binary serves them: a budget of 150 KB gzipped.
console_bytes=0
while IFS= read -r -d '' asset; do
    console_bytes=$((console_bytes + $(gzip -9c "$asset" | wc -c)))
done < <(find crates/http/console -type f ! -name '*LICENSE' -print0)
echo "== console assets: $console_bytes bytes gzipped"
if ((console_bytes > 150 * 1024)); then
    echo "error: the console's assets are $console_bytes bytes gzipped, over the 150 KB budget" >&2
    exit 1
fi

workdir="$(mktemp -d)"
trap 'stop_server; rm -rf "$workdir"' EXIT
allowed_port="$(free_port)"
other_port="$(free_port)"
while [[ "$other_port" == "$allowed_port" ]]; do other_port="$(free_port)"; done
# The origin of the passkey pages: WebAuthn wants a domain, so localhost.
passkey_port="$(free_port)"

# A real OpenID provider, whose redirects go to the front end's own origin.
oidc_dir="tests/oidc"
if ! cmp -s "$oidc_dir/package-lock.json" "$oidc_dir/node_modules/.installed-lock.json"; then
    (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock.json)
fi
provider_pids=()
trap 'stop_server; kill "${provider_pids[@]}" 2>/dev/null || true; rm -rf "$workdir"' EXIT
# start_provider <redirect base> <name>: sets PROVIDER_ISSUER once it serves.
start_provider() {
    node "$oidc_dir/provider.mjs" "$1" >"$workdir/$2.out" 2>"$workdir/$2.err" &
    provider_pids+=($!)
    for _ in $(seq 1 100); do
        grep -q issuer "$workdir/$2.out" 2>/dev/null && break
        sleep 0.1
    done
    PROVIDER_ISSUER="$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["issuer"])' "$workdir/$2.out")" || {
        echo "error: the OpenID provider did not start:" >&2
        cat "$workdir/$2.err" >&2
        exit 1
    }
}
start_provider "http://127.0.0.1:$allowed_port" provider
issuer="$PROVIDER_ISSUER"

start_server "sqlite://$workdir/browser.db?mode=rwc" CORS_ORIGINS="http://127.0.0.1:$allowed_port" \
    OAUTH_PROVIDERS=test OAUTH_TEST_ISSUER="$issuer" OAUTH_TEST_CLIENT_ID=userhub \
    OAUTH_TEST_CLIENT_SECRET=userhub-test-secret OAUTH_REDIRECT_BASE_URL="http://127.0.0.1:$allowed_port" \
    WEBAUTHN_RP_ID=localhost WEBAUTHN_ORIGINS="http://localhost:$passkey_port,http://other.localhost:$passkey_port"
echo "== server at $SERVER_URL; pages from :$allowed_port (allowed) and :$other_port (not)"

mkdir -p build/browser
(
    cd tests/browser
    USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
        ALLOWED_ORIGIN_PORT="$allowed_port" OTHER_ORIGIN_PORT="$other_port" OAUTH_PROVIDER_NAME=test \
        PASSKEY_ORIGIN_PORT="$passkey_port" \
        ARTIFACTS_DIR="$PWD/../../build/browser" \
        node --test --test-concurrency=1 $(ls ./*.test.mjs | grep -v console.test.mjs)
)

# Passkeys again on PostgreSQL, when it is reachable: the ceremonies'
# state and the counters live in the database.
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v psql >/dev/null && psql "$pg_url" -qc 'SELECT 1' >/dev/null 2>&1; then
    stop_server
    pg_database="userhub_browser_$$"
    psql "$pg_url" -qc "CREATE DATABASE $pg_database" >/dev/null
    # The console's origin is the server's own: localhost, for WebAuthn,
    # with a provider whose redirects come back to it.
    console_port="$(free_port)"
    start_provider "http://localhost:$console_port" console-provider
    trap 'stop_server; kill "${provider_pids[@]}" 2>/dev/null || true; psql "$pg_url" -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT
    SERVER_PORT="$console_port" start_server "${pg_url%/*}/$pg_database" \
        PUBLIC_URL="http://localhost:$console_port" WEBHOOK_ALLOW_PRIVATE_NETWORKS=true \
        OAUTH_PROVIDERS=test OAUTH_TEST_ISSUER="$PROVIDER_ISSUER" OAUTH_TEST_CLIENT_ID=userhub \
        OAUTH_TEST_CLIENT_SECRET=userhub-test-secret OAUTH_REDIRECT_BASE_URL="http://localhost:$console_port" \
        WEBAUTHN_RP_ID=localhost \
        WEBAUTHN_ORIGINS="http://localhost:$passkey_port,http://other.localhost:$passkey_port,http://localhost:$console_port"
    echo "== passkeys and the console on PostgreSQL ($pg_database), server at $SERVER_URL"
    (
        cd tests/browser
        USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
            PASSKEY_ORIGIN_PORT="$passkey_port" CONSOLE_PORT="$console_port" OAUTH_PROVIDER_NAME=test \
            PYOTP_PYTHON="$USERHUB_TEST_SMTP_PYTHON" ARTIFACTS_DIR="$PWD/../../build/browser" \
            CONSOLE_SCREENSHOTS="${CONSOLE_SCREENSHOTS:+$PWD/../../$CONSOLE_SCREENSHOTS}" \
            node --test --test-concurrency=1 ./passkeys.test.mjs ./console.test.mjs
    )
else
    echo "warning: PostgreSQL is unreachable: the passkey browser tests ran on SQLite only; the console's did NOT RUN" >&2
fi
echo "== screenshots in build/browser/"
