#!/usr/bin/env bash
# `sudo npm run drill`: the failover drill from a fresh clone. Installs what is missing (system
# packages via apt, node_modules via npm install, the agent bundle via npm run build), saying so, then
# runs the scenarios. Arguments pass through: --json, --mode same-subnet|cross-az,
# --hook-mode notify|fifo, --scenario N.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "drill: it creates network namespaces and runs keepalived; run it as root: sudo npm run drill" >&2
  exit 1
fi
bash scripts/install-system-deps.sh
if [ ! -x node_modules/.bin/tsx ]; then
  echo "drill: installing node_modules (npm install, from package-lock.json)"
  npm install --no-audit --no-fund >/dev/null
fi
if [ ! -f agent/dist/eip-failover.mjs ]; then
  echo "drill: building the agent (npm run build)"
  npm run --silent build
fi
# The harness's own SDK clients would print Node 20's support notice; the agent already keeps it off.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED="${AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED:-true}"
exec node --import tsx test/drill/main.ts "$@"
