#!/usr/bin/env bash
# The run command: set everything up, bring the lab up, and start JupyterLab on notebooks/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

PORT="${ATP_JUPYTER_PORT:-8888}"
TOKEN="${ATP_JUPYTER_TOKEN:-$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(16))')}"
echo
echo "JupyterLab (the lab's notebooks): http://127.0.0.1:$PORT/lab?token=$TOKEN"
echo
cd "$ATP_ROOT/notebooks"
exec "$VENV/bin/jupyter" lab --allow-root --no-browser --ip=127.0.0.1 --port="$PORT" \
    --IdentityProvider.token="$TOKEN" --ServerApp.root_dir="$ATP_ROOT/notebooks"
