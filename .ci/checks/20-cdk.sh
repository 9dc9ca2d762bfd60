#!/usr/bin/env bash
# The CDK app: synthesize both modes offline (no account, no credentials, no lookups; cdk-nag's
# AwsSolutions pack fails the synth on any unacknowledged finding), then cfn-lint each template.
#
# It runs the CLI the README tells users to run (`npx cdk synth`), pinned in package.json to the
# release that reads this aws-cdk-lib's cloud assembly, with no AWS credentials in reach.
set -euo pipefail
cd "$(dirname "$0")/../.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

synth() {
  local name="$1"
  shift
  local out="$work/$name"
  env -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED=true \
    CDK_DISABLE_VERSION_CHECK=1 npx --no-install cdk synth --quiet --no-notices -o "$out" "$@" >/dev/null
  echo "synthesized $name: $(ls "$out"/*.template.json)"
}

synth same-subnet -c mode=same-subnet
synth cross-az -c mode=cross-az
# An existing VPC and an imported Elastic IP, with SSM and endpoints off and SSH from a CIDR.
synth existing-vpc -c mode=cross-az -c existingAllocationId=eipalloc-0123456789abcdef0 \
  -c existingPublicIp=203.0.113.7 -c ssm=false -c apiEndpoints=false -c adminCidr=198.51.100.0/24 \
  -c keyName=ops \
  -c 'existingVpc={"vpcId":"vpc-0123456789abcdef0","vpcCidr":"10.1.0.0/16","subnets":[{"subnetId":"subnet-0aaaaaaaaaaaaaaa1","cidr":"10.1.0.0/24","availabilityZone":"eu-central-1a"},{"subnetId":"subnet-0bbbbbbbbbbbbbbb2","cidr":"10.1.1.0/24","availabilityZone":"eu-central-1b"}]}'

# cfn-lint exits non-zero on any error, warning or informational finding; nothing is ignored.
cfn-lint --version
cfn-lint -- "$work"/*/*.template.json
echo "cfn-lint: no findings on $(ls "$work"/*/*.template.json | wc -l) templates"
