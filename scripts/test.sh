#!/usr/bin/env bash
# Runs the whole test suite: unit tests, adapter tests and end-to-end tests
# on PostgreSQL and SQLite (and the pooler tests through a PgBouncer it
# starts), then the fault drills (tests/src/bin/drills/,
# on a PostgreSQL cluster of their own), the load-balancer scenarios
# (tests/src/bin/cluster.rs, on deploy/local-cluster.sh), the schema fuzzer (scripts/fuzz.sh),
# the standard-client tests (scripts/client-test.sh: authlib and generated
# Python and TypeScript clients), the browser tests (scripts/browser-test.sh)
# and the examples of README.md and docs/API.md (scripts/docs-examples.sh),
# which install what they need. SKIP_DRILLS=1, SKIP_CLUSTER=1, SKIP_FUZZ=1,
# SKIP_CLIENTS=1, SKIP_BROWSER=1 or SKIP_DOCS=1 leaves one out
# (reported as NOT RUN; refused with CI=true). Arguments go to the cargo
# test run.
#
# PostgreSQL comes from TEST_DATABASE_URL (default: the local server, user
# postgres). When it cannot be reached:
#   - with CI=true, this fails: the PostgreSQL tests must run in CI;
#   - otherwise the PostgreSQL tests are skipped and reported as NOT RUN.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

postgres_reachable() {
    # The host and port of the URL, probed with bash's /dev/tcp (no client needed).
    local authority host port
    authority="${TEST_DATABASE_URL#*://}"
    authority="${authority%%/*}"
    authority="${authority##*@}"
    host="${authority%%:*}"
    port="${authority##*:}"
    [[ "$port" == "$authority" ]] && port=5432
    timeout 3 bash -c ">/dev/tcp/$host/$port" 2>/dev/null
}

filter=()
if ! postgres_reachable; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "error: PostgreSQL is unreachable at $TEST_DATABASE_URL and CI=true: its tests must run." >&2
        exit 1
    fi
    echo "warning: PostgreSQL is unreachable at $TEST_DATABASE_URL." >&2
    echo "warning: the PostgreSQL tests (names ending in on_postgres) are NOT RUN." >&2
    filter=(skip)
fi

# The mail tests talk to a real SMTP server, aiosmtpd, which they start
# themselves from this venv; the second-factor tests compute codes with
# pyotp from it.
source scripts/lib/python.sh
ensure_test_python

# The sign-in tests run a real OpenID provider, oidc-provider (Node.js),
# installed from tests/oidc/package-lock.json when it changed.
command -v node >/dev/null || { echo "error: Node.js is required (the sign-in tests run oidc-provider)" >&2; exit 1; }
oidc_dir="tests/oidc"
if ! cmp -s "$oidc_dir/package-lock.json" "$oidc_dir/node_modules/.installed-lock.json"; then
    echo "== installing oidc-provider into $oidc_dir/node_modules"
    (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock.json)
fi
export USERHUB_TEST_OIDC_PROVIDER="$PWD/$oidc_dir/provider.mjs"

# The pooler tests (names starting with `pooler::`) reach PostgreSQL through
# a real PgBouncer in transaction pooling mode.
source scripts/lib/pgbouncer.sh
if [[ ${#filter[@]} -eq 0 ]]; then
    trap stop_pgbouncer EXIT
    start_pgbouncer
fi

if cargo nextest --version >/dev/null 2>&1; then
    if [[ ${#filter[@]} -gt 0 ]]; then
        cargo nextest run --workspace --no-fail-fast -E 'not test(/on_postgres$/)' "$@"
    else
        cargo nextest run --workspace --no-fail-fast "$@"
    fi
    # nextest does not run doctests.
    cargo test --workspace --doc --quiet
else
    if [[ ${#filter[@]} -gt 0 ]]; then
        cargo test --workspace --no-fail-fast "$@" -- --skip on_postgres
    else
        cargo test --workspace --no-fail-fast "$@"
    fi
fi

not_run=()
for step in drills cluster fuzz clients browser docs; do
    skip_var="SKIP_${step^^}"
    if [[ "${!skip_var:-}" == "1" ]]; then
        if [[ "${CI:-}" == "true" ]]; then
            echo "error: $skip_var=1 and CI=true: every test must run in CI." >&2
            exit 1
        fi
        not_run+=("$step")
        continue
    fi
    case "$step" in
        drills)
            if [[ ${#filter[@]} -gt 0 ]]; then
                not_run+=("$step")
                continue
            fi
            cargo build --quiet -p userhub-server -p userhub-tests --bins
            "${CARGO_TARGET_DIR:-target}/debug/drills"
            ;;
        cluster)
            if [[ ${#filter[@]} -gt 0 ]]; then
                not_run+=("$step")
                continue
            fi
            cargo build --quiet -p userhub-server -p userhub-tests --bins
            "${CARGO_TARGET_DIR:-target}/debug/cluster"
            ;;
        fuzz) ./scripts/fuzz.sh ;;
        clients) ./scripts/client-test.sh ;;
        browser) ./scripts/browser-test.sh ;;
        docs) ./scripts/docs-examples.sh ;;
    esac
done

if [[ ${#filter[@]} -gt 0 ]]; then
    echo "warning: PostgreSQL tests were NOT RUN (PostgreSQL unreachable)." >&2
fi
for step in "${not_run[@]}"; do
    echo "warning: the $step tests were NOT RUN (SKIP_${step^^}=1)." >&2
done
