#!/usr/bin/env bash
# Browser tests in headless Chromium (Debian's package, driven by
# playwright-core): Swagger UI's OAuth2 password flow at /docs, and CORS as
# a browser enforces it. Installs Chromium and the npm packages when missing.
# Screenshots go to build/browser/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh

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

workdir="$(mktemp -d)"
trap 'stop_server; rm -rf "$workdir"' EXIT
allowed_port="$(free_port)"
other_port="$(free_port)"
while [[ "$other_port" == "$allowed_port" ]]; do other_port="$(free_port)"; done

start_server "sqlite://$workdir/browser.db?mode=rwc" CORS_ORIGINS="http://127.0.0.1:$allowed_port"
echo "== server at $SERVER_URL; pages from :$allowed_port (allowed) and :$other_port (not)"

mkdir -p build/browser
(
    cd tests/browser
    USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
        ALLOWED_ORIGIN_PORT="$allowed_port" OTHER_ORIGIN_PORT="$other_port" \
        ARTIFACTS_DIR="$PWD/../../build/browser" \
        node --test --test-concurrency=1 ./*.test.mjs
)
echo "== screenshots in build/browser/"
