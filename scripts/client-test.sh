#!/usr/bin/env bash
# Standard clients against a real server (SQLite, throw-away):
#   - authlib's OAuth2Session (Python): the password grant, refresh_token()
#     and a wrong password raised as an OAuth2 error;
#   - a Python client generated from the served /openapi.json with
#     openapi-python-client, and a short script written against it;
#   - a TypeScript client generated from the served /openapi.json with
#     openapi-typescript, called through openapi-fetch, type-checked with
#     `tsc --strict` and run under Node.
# Installs the Python packages in venvs under build/ and the npm packages
# when missing.
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
generator_venv="build/python-client-venv"
generator_requirements="tests/clients/python-generated/requirements.txt"
if [[ ! -x "$generator_venv/bin/python" ]] || ! cmp -s "$generator_requirements" "$generator_venv/requirements.txt"; then
    echo "== installing openapi-python-client into $generator_venv"
    python3 -m venv "$generator_venv"
    "$generator_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$generator_requirements"
    cp "$generator_requirements" "$generator_venv/requirements.txt"
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

echo "== Python: openapi-python-client, and a script written against it"
"$generator_venv/bin/openapi-python-client" generate --url "$SERVER_URL/openapi.json" \
    --config tests/clients/python-generated/generator.yaml --output-path "$workdir/python-client"
USERHUB_URL="$SERVER_URL" PYTHONPATH="$workdir/python-client" \
    "$generator_venv/bin/python" -W error::DeprecationWarning tests/clients/python-generated/script.py

echo "== TypeScript: openapi-typescript, tsc --strict, openapi-fetch"
(
    cd tests/clients/typescript
    rm -rf generated build
    npx --no-install openapi-typescript "$SERVER_URL/openapi.json" -o generated/schema.d.ts
    npx --no-install tsc -p tsconfig.json
    USERHUB_URL="$SERVER_URL" USERHUB_EMAIL="$ROOT_EMAIL" USERHUB_PASSWORD="$ROOT_PASSWORD" \
        node --test build/client.test.js
)
