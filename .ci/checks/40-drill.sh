#!/usr/bin/env bash
# The failover drill: real keepalived in network namespaces, role-rendered configs, the built agent,
# the EC2 emulator; both topologies, seven scenarios each. Exits non-zero on any failed assertion.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/drill.sh
