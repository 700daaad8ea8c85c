#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser tests (tests/test_ui_browser.py). Idempotent.
#
# The browser is Debian's chromium package (apt-get, needs root), never Playwright's own download:
# `playwright install` fetches a browser build from a CDN, which offline machines cannot reach and
# which we would have to trust separately. The Python `playwright` package only drives it, launched
# with executable_path=/usr/bin/chromium. Without root and without chromium the tests skip themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT=${TUNEGATE_PLAYWRIGHT:-playwright>=1.50}

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "warning: /usr/bin/chromium is missing and installing it needs root; browser tests will skip" >&2
  else
    echo "installing Debian's chromium (apt-get install chromium)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  fi
fi

if ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the pip package never downloads browsers, but say so anyway.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install -q "$PLAYWRIGHT"
fi
