#!/usr/bin/env bash
# The fleet simulation (bench/fleet.ts, issue #7): 50 same-subnet pairs whose secondaries all take
# over at once, each as the built agent in its own process, against the EC2 emulator enforcing
# EC2's request token buckets, in both SDK retry modes. Prints the comparison table; fails only
# when an invariant breaks (an address not verified, an agent exiting non-zero before its deadline),
# never on timings. Loopback only, fake credentials; stops and cleans up by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run fleet -- --reps 1
