#!/usr/bin/env bash
# The README's "From candidate to production" flow, end to end on the bundled example, in a fresh
# workspace: users, two trained versions, review to sign-off, staging, production, rollback, log verify.
# Usage: scripts/governance-walkthrough.sh [WORKSPACE]   (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
TG=.venv/bin/tunegate
export TUNEGATE_WORKSPACE=${1:-$(mktemp -d)/ws}
echo "workspace: $TUNEGATE_WORKSPACE"

step() { printf '\n$ %s\n' "$*"; "$@"; }

ADMIN=$($TG users add alice --role admin)
RITA=$($TG users add rita --role reviewer --api-key "$ADMIN")
step $TG users list --api-key "$ADMIN"

review_all() {  # rita decides every item: approve a right prediction, reject a wrong one
  local ref=$1 n=0
  step $TG review open "$ref" --api-key "$RITA"
  while item=$($TG review next "$ref" --json --api-key "$RITA"); do
    read -r id verdict < <(python3 -c 'import json,sys; i=json.loads(sys.argv[1]); print(i["id"], "approve" if i["predicted"]==i["label"] else "reject")' "$item")
    $TG review "$verdict" "$id" -m "checked against the label" --api-key "$RITA" > /dev/null
    n=$((n + 1))
  done
  echo "rita decided $n items"
  step $TG review status "$ref" --api-key "$RITA"
}

for v in 1 2; do
  step env TUNEGATE_API_KEY="$ADMIN" $TG run examples/support-intents || true  # a FAIL is shown, not fatal here
  review_all "support-intents@$v"
  echo; echo "# a reviewer may not promote:"
  step $TG promote "support-intents@$v" --to staging --api-key "$RITA" || true
  step $TG promote "support-intents@$v" --to staging --api-key "$ADMIN"
  step $TG promote "support-intents@$v" --to production --api-key "$ADMIN"
done
step $TG models list
step $TG rollback support-intents --reason "walkthrough: v2 misroutes refunds" --api-key "$ADMIN"
step $TG models list
step $TG log verify --api-key "$ADMIN"
