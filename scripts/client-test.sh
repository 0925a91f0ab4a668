#!/usr/bin/env bash
# Standard clients against a real server (SQLite, throw-away):
#   - authlib's OAuth2Session (Python): the password grant, refresh_token()
#     and a wrong password raised as an OAuth2 error;
#   - a TypeScript client generated from the served /openapi.json with
#     openapi-typescript, called through openapi-fetch, type-checked with
#     `tsc --strict` and run under Node.
# Installs authlib in a venv under build/ and the npm packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh

venv="build/client-venv"
requirements="tests/clients/python/requirements.txt"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "== installing authlib into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi
command -v node >/dev/null || { echo "error: Node.js is required" >&2; exit 1; }
echo "== npm packages"
(cd tests/clients/typescript && npm ci --no-audit --no-fund --loglevel=error)

workdir="$(mktemp -d)"
trap 'stop_server; rm -rf "$workdir"' EXIT
start_server "sqlite://$workdir/clients.db?mode=rwc"
echo "== server at $SERVER_URL"

echo "== authlib OAuth2Session"
USERHUB_URL="$SERVER_URL" "$venv/bin/python" tests/clients/python/oauth2_client.py

echo "== TypeScript: openapi-typescript, tsc --strict, openapi-fetch"
(
    cd tests/clients/typescript
    rm -rf generated build
    npx --no-install openapi-typescript "$SERVER_URL/openapi.json" -o generated/schema.d.ts
    npx --no-install tsc -p tsconfig.json
    USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
        node --test build/client.test.js
)
