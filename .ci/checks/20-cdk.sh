#!/usr/bin/env bash
# The CDK app: synthesize both modes offline (no account, no credentials, no lookups; cdk-nag's
# AwsSolutions pack fails the synth on any unacknowledged finding), then cfn-lint each template.
#
# The app is run directly (CDK_OUTDIR + CDK_CONTEXT_JSON, exactly what `cdk synth` hands it) rather
# than through the CLI, so the check does not depend on the installed CLI reading this aws-cdk-lib's
# cloud-assembly schema version; the context is cdk.json's, as the CLI would pass it.
set -euo pipefail
cd "$(dirname "$0")/../.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

synth() {
  local name="$1" extra="$2"
  local out="$work/$name"
  mkdir -p "$out"
  CDK_CONTEXT_JSON="$(node -e '
    const extra = JSON.parse(process.argv[1]);
    const context = require("./cdk.json").context;
    process.stdout.write(JSON.stringify({ ...context, ...extra }));
  ' "$extra")" CDK_OUTDIR="$out" npx --no-install tsx bin/app.ts
  echo "synthesized $name: $(ls "$out"/*.template.json)"
}

synth same-subnet '{"mode":"same-subnet"}'
synth cross-az '{"mode":"cross-az"}'
# An existing VPC and an imported Elastic IP, with SSM and endpoints off and SSH from a CIDR.
synth existing-vpc '{"mode":"cross-az","existingAllocationId":"eipalloc-0123456789abcdef0","existingPublicIp":"203.0.113.7","existingVpc":{"vpcId":"vpc-0123456789abcdef0","vpcCidr":"10.1.0.0/16","subnets":[{"subnetId":"subnet-0aaaaaaaaaaaaaaa1","cidr":"10.1.0.0/24","availabilityZone":"eu-central-1a"},{"subnetId":"subnet-0bbbbbbbbbbbbbbb2","cidr":"10.1.1.0/24","availabilityZone":"eu-central-1b"}]},"ssm":"false","apiEndpoints":"false","adminCidr":"198.51.100.0/24","keyName":"ops"}'

# cfn-lint exits non-zero on any error, warning or informational finding; nothing is ignored.
cfn-lint --version
cfn-lint -- "$work"/*/*.template.json
echo "cfn-lint: no findings on $(ls "$work"/*/*.template.json | wc -l) templates"
