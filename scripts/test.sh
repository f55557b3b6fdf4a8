#!/usr/bin/env bash
# The test command: set everything up, bring the lab up, then lint, type-check and run the
# whole suite (unit, integration against the lab, notebooks under nbval).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ATP_ROOT"

echo "== ruff"
"$VENV/bin/ruff" check .
echo "== mypy --strict"
"$VENV/bin/mypy"
echo "== pytest"
rc=0
"$VENV/bin/pytest" -p no:cacheprovider --nbval --nbval-sanitize-with tests/nbval-sanitize.cfg \
    tests notebooks "$@" || rc=$?
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
