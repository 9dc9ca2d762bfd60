#!/usr/bin/env bash
# The benchmark's baseline: the notify_master hook most users of the Elastic IP + keepalived
# pattern run today, written from AWS's documented steps (IMDSv2 with curl, then the AWS CLI):
#
#   1. an IMDSv2 session token (PUT /latest/api/token with a TTL header), then the instance id;
#   2. describe-instances for the ENI at device index 0;
#   3. assign-private-ip-addresses --allow-reassignment: the VIP moves to this ENI;
#   4. associate-address --allow-reassociation: the Elastic IP onto the VIP here (both allow flags,
#      or the second failover fails because the address is still in use on the peer).
#
# Inputs (environment): EIP_ALLOCATION_ID, VIP; AWS_DEFAULT_REGION and credentials as for any
# AWS CLI call; AWS_EC2_METADATA_SERVICE_ENDPOINT (default the real IMDS address); AWS_CLI (default
# `aws`). The benchmark points the CLI at its emulator with AWS_ENDPOINT_URL_EC2, which AWS CLI v1
# (botocore's service-specific endpoints) honours, so the hook itself is as users write it.
set -euo pipefail

: "${EIP_ALLOCATION_ID:?set EIP_ALLOCATION_ID}" "${VIP:?set VIP}"
imds="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
imds="${imds%/}"
aws=("${AWS_CLI:-aws}")

token=$(curl -sSf -X PUT "$imds/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600')
instance_id=$(curl -sSf -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/instance-id")

eni=$("${aws[@]}" ec2 describe-instances --instance-ids "$instance_id" \
  --query 'Reservations[0].Instances[0].NetworkInterfaces[?Attachment.DeviceIndex==`0`].NetworkInterfaceId' \
  --output text)

"${aws[@]}" ec2 assign-private-ip-addresses --network-interface-id "$eni" \
  --private-ip-addresses "$VIP" --allow-reassignment

"${aws[@]}" ec2 associate-address --allocation-id "$EIP_ALLOCATION_ID" \
  --network-interface-id "$eni" --private-ip-address "$VIP" --allow-reassociation
