#!/usr/bin/env bash
# The Ansible role, its templates and the inventory from CDK outputs: lint, syntax, and the vitest
# suites that render both nodes of a sample pair on this machine (local connection, temp dirs only).
# Runs as root after `npm ci` and scripts/install-system-deps.sh; any failure fails the check.
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Ansible's and ansible-lint's caches and temp files go to the scratch directory, not ~/.ansible.
export ANSIBLE_HOME="$scratch/.ansible" ANSIBLE_LOCAL_TEMP="$scratch/.ansible/tmp"

echo "--- yamllint"
yamllint --strict .

echo "--- ansible-lint"
ansible-lint ansible/

echo "--- ansible-playbook --syntax-check (inventory from the contract's example outputs)"
node -e 'const c = require("./lib/outputs-contract.json"); process.stdout.write(JSON.stringify(c.example))' \
  >"$scratch/cdk-outputs.json"
ANSIBLE_CONFIG=ansible/ansible.cfg EIP_PAIR_OUTPUTS="$scratch/cdk-outputs.json" \
  ansible-playbook --syntax-check ansible/site.yml

echo "--- vitest (test/ansible)"
npx vitest run --config vitest.ansible.config.ts
