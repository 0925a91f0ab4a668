#!/usr/bin/env bash
# Runs the shell examples of README.md and docs/API.md (their ```sh blocks
# that call the API) against a real server, as a reader would paste them:
# one bash session per file, a fresh server (SQLite, throw-away) for each,
# its first superuser root@example.com / Correct-Horse-Battery-9 as the
# docs say. Every `curl` fails on an HTTP error (but the documented 403
# of a login that needs its second step), so an example that no longer
# matches the server fails here. ```console blocks are transcripts
# (they need a provider account or a mailbox) and are not run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/server.sh

command -v jq >/dev/null || { echo "error: the examples use jq" >&2; exit 1; }
# pyotp stands in for an authenticator app, as the docs say (the test venv has it).
venv="build/smtp-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyotp' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/smtp/requirements.txt
    cp tests/smtp/requirements.txt "$venv/requirements.txt"
fi
shim="$(mktemp -d)"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PWD/$venv/bin/python" >"$shim/python3"
chmod +x "$shim/python3"

workdir="$(mktemp -d)"
trap 'stop_server; rm -rf "$workdir" "$shim"' EXIT

for doc in README.md docs/API.md; do
    script="$workdir/$(basename "$doc").sh"
    python3 - "$doc" >"$script" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = [b for b in re.findall(r'(?m)^```sh\n(.*?)^```', text, re.S) if 'curl' in b]
print('set -euo pipefail')
# Fails on an HTTP error, but for the documented 403 mfa_required step.
print(r"""curl() {
    local out status
    out="$(command curl -sS -w '\n%{http_code}' "$@")" || return $?
    status="${out##*$'\n'}"
    out="${out%$'\n'*}"
    printf '%s\n' "$out"
    if (( status >= 400 )) && ! [[ $status == 403 && $out == *mfa_required* ]]; then
        echo "HTTP $status: $out" >&2
        return 22
    fi
}""")
for i, block in enumerate(blocks, 1):
    print(f'echo "== example {i}" >&2')
    print(block)
PY
    count="$(grep -c '^echo "== example' "$script" || true)"
    [[ "$count" -gt 0 ]] || { echo "error: no runnable example in $doc" >&2; exit 1; }
    start_server "sqlite://$workdir/$(basename "$doc").db?mode=rwc"
    hostport="${SERVER_URL#http://}"
    sed -i -e "s#localhost:8000#$hostport#g" -e "s#127\.0\.0\.1:8000#$hostport#g" "$script"
    echo "== $doc: $count examples against $SERVER_URL"
    if ! PATH="$shim:$PATH" bash "$script" >"$workdir/out" 2>&1; then
        cat "$workdir/out" >&2
        echo "error: an example of $doc failed (above)" >&2
        exit 1
    fi
    stop_server
done
echo "== every example ran"
