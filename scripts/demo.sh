#!/usr/bin/env bash
# Start JupyterLab with Flow on the Slurm executor and print how to reach it: scripts/demo.sh ROOT PORT
set -euo pipefail
ROOT=${1:?usage: demo.sh ROOT PORT}
PORT=${2:?usage: demo.sh ROOT PORT}
IP=${DEMO_IP:-127.0.0.1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VENV_BIN:-$HERE/.venv/bin}

mkdir -p "$ROOT/notebooks"
TOKEN_FILE=$ROOT/.demo-token
[[ -s $TOKEN_FILE ]] || "$BIN/python" -c 'import secrets; print(secrets.token_hex(24))' > "$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"
TOKEN=$(cat "$TOKEN_FILE")

export FLOW_ROOT=$ROOT/store FLOW_EXECUTOR=${FLOW_EXECUTOR:-slurm} PATH=$BIN:$PATH
"$BIN/flow-jupyter" doctor || echo "demo: some components fail (see above); JupyterLab starts anyway" >&2
# Demo data for the bundled `demo` pipeline (registered automatically): reads, reference, sample sheets, barcodes.
[[ -f $ROOT/notebooks/demo-data/samplesheet.csv ]] || "$BIN/flow-jupyter" demo-data "$ROOT/notebooks/demo-data" >/dev/null
# The quickstart notebook opens first; a copy the user changed is never overwritten.
[[ -f $ROOT/notebooks/quickstart.ipynb ]] || cp "$HERE/examples/quickstart.ipynb" "$ROOT/notebooks/quickstart.ipynb"

extra=()
[[ $(id -u) == 0 ]] && extra+=(--allow-root)
cat <<EOT

  Flow demo — JupyterLab with Flow (executor: $FLOW_EXECUTOR, store: $FLOW_ROOT)
    open:    http://$IP:$PORT/lab/tree/quickstart.ipynb?token=$TOKEN
    data:    $ROOT/notebooks/demo-data (sample sheets for the bundled "demo" pipeline)
    health:  curl -s -H "Authorization: token $TOKEN" http://$IP:$PORT/flow/api/health
  Stop with Ctrl-C.

EOT
exec "$BIN/jupyter" lab --no-browser --ip="$IP" --port="$PORT" --port-retries=0 \
  --IdentityProvider.token="$TOKEN" --ServerApp.root_dir="$ROOT/notebooks" \
  --ServerApp.default_url=/lab/tree/quickstart.ipynb "${extra[@]}"
