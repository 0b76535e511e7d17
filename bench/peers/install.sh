#!/usr/bin/env bash
# Install the benchmark peers (n8n, Node-RED) into the git-ignored bench/.peers/.
#
# Idempotent: a peer whose install marker matches its pinned version is skipped.
# Usage: bench/peers/install.sh [n8n] [nodered] [celery]   (no argument = all)
# Celery's Python dependencies come from the project's `bench` extra
# (aiohttp, celery[redis]); it is only checked here, not installed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
ROOT="$(dirname "$BENCH")"
PEERS="$BENCH/.peers"
N8N_VERSION="1.110.1"
NODERED_VERSION="4.1.15"

mkdir -p "$PEERS"
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(n8n nodered celery)

npm_install() {  # dir, marker text
  local dir="$1" marker="$2"
  if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$marker" ]; then
    echo "[install] $(basename "$dir"): already installed ($marker)"
    return 0
  fi
  echo "[install] $(basename "$dir"): npm install ($marker) ..."
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --omit=dev)
  echo "$marker" >"$dir/.installed"
}

for peer in "${want[@]}"; do
  case "$peer" in
    n8n)
      mkdir -p "$PEERS/n8n"
      # n8n-nodes-base depends on an xlsx tarball outside the npm registry:
      # pin it to the registry's last published xlsx instead.
      cat >"$PEERS/n8n/package.json" <<JSON
{
  "name": "crossdock-bench-n8n",
  "private": true,
  "dependencies": {"n8n": "$N8N_VERSION"},
  "overrides": {"xlsx": "0.18.5"}
}
JSON
      npm_install "$PEERS/n8n" "n8n@$N8N_VERSION"
      ;;
    nodered)
      mkdir -p "$PEERS/nodered"
      cat >"$PEERS/nodered/package.json" <<JSON
{
  "name": "crossdock-bench-nodered",
  "private": true,
  "dependencies": {"node-red": "$NODERED_VERSION"}
}
JSON
      npm_install "$PEERS/nodered" "node-red@$NODERED_VERSION"
      ;;
    celery)
      PY="${PYTHON:-$ROOT/.venv/bin/python}"
      if ! "$PY" -c 'import celery, redis, aiohttp, uvicorn, fastapi, httpx' 2>/dev/null; then
        echo "[install] celery: installing the 'bench' extra into $PY"
        "$PY" -m pip install --quiet "aiohttp==3.14.5" "celery[redis]==5.5.3"
      else
        echo "[install] celery: python deps present"
      fi
      ;;
    *) echo "[install] unknown peer: $peer" >&2; exit 2 ;;
  esac
done
