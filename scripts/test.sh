#!/usr/bin/env bash
# Set up (idempotent) and run the default test suite: what CI runs (.ci/run) and the README's second command.
#   scripts/test.sh              default suite (well under 15 minutes on 2 cores)
#   scripts/test.sh -m slow      the slow tests only (documented in README: "Slow tests")
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# A real PostgreSQL for the store tests, when the helper script can start one (installs Debian's package).
if [ -x scripts/postgres-test-server.sh ] && [ -z "${TUNEGATE_TEST_POSTGRES_URL:-}" ]; then
  if url=$(scripts/postgres-test-server.sh start); then
    export TUNEGATE_TEST_POSTGRES_URL="$url"
    trap 'scripts/postgres-test-server.sh stop >/dev/null 2>&1 || true' EXIT
  else
    echo "warning: could not start PostgreSQL; PostgreSQL tests will report themselves skipped" >&2
  fi
fi

# Headless Chromium for the dashboard tests, when they exist.
if [ -x scripts/browser-setup.sh ]; then
  scripts/browser-setup.sh
fi

.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports --no-cache
if [ $# -eq 0 ]; then
  set -- -m "not slow"
fi
.venv/bin/python -m pytest "$@"
