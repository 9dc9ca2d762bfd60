#!/usr/bin/env python3
"""Ansible inventory for the keepalived + Elastic IP pair, from `cdk deploy --outputs-file`.

The output keys come from lib/outputs-contract.json, the one definition shared with the CDK stack.
The only manual input is how Ansible reaches the nodes:

  EIP_PAIR_OUTPUTS      the outputs file (default: cdk-outputs.json at the repository root)
  EIP_PAIR_STACK        the stack in it (default: the contract's stack, KeepalivedEipPair)
  EIP_PAIR_CONNECTION   ssh (default): ansible_host is the node's private IP;
                        ssm: the community.aws.aws_ssm connection, ansible_host is the instance id
  EIP_PAIR_SSM_BUCKET   with ssm: the S3 bucket the aws_ssm connection transfers files through

Usage (as Ansible calls it): cdk_outputs.py --list | --host NAME
"""

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "lib" / "outputs-contract.json"
GROUP = "keepalived_eip_pair"
# The primary starts as MASTER: the higher VRRP priority.
PRIORITIES = {"Primary": 150, "Secondary": 100}


class InventoryError(Exception):
    pass


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InventoryError(
            f"{what} {path} does not exist; run `cdk deploy --outputs-file cdk-outputs.json` "
            "or set EIP_PAIR_OUTPUTS"
        ) from None
    except (OSError, ValueError) as err:
        raise InventoryError(f"cannot read {what} {path}: {err}") from None


def build_inventory(contract, outputs, stack_name, connection, ssm_bucket):
    stack = outputs.get(stack_name)
    if not isinstance(stack, dict):
        found = ", ".join(sorted(outputs)) or "none"
        raise InventoryError(
            f"stack {stack_name} is not in the outputs file (stacks found: {found}); set EIP_PAIR_STACK"
        )
    nodes = contract["nodes"]
    wanted = list(contract["pair"]) + [node + key for node in nodes for key in contract["perNode"]]
    missing = [key for key in wanted if not isinstance(stack.get(key), str) or not stack[key]]
    if missing:
        raise InventoryError(
            f"stack {stack_name} lacks outputs {', '.join(missing)} "
            "(lib/outputs-contract.json lists them); redeploy the stack"
        )
    mode = stack["Mode"]
    if mode not in ("same-subnet", "cross-az"):
        raise InventoryError(f"Mode is {mode!r}; expected same-subnet or cross-az")
    if connection not in ("ssh", "ssm"):
        raise InventoryError(f"EIP_PAIR_CONNECTION is {connection!r}; expected ssh or ssm")
    if connection == "ssm" and not ssm_bucket:
        raise InventoryError("EIP_PAIR_CONNECTION=ssm needs EIP_PAIR_SSM_BUCKET (aws_ssm moves files through S3)")

    group_vars = {
        "keepalived_eip_mode": mode,
        "keepalived_eip_allocation_id": stack["AllocationId"],
        "keepalived_eip_vip": stack["Vip"] if mode == "same-subnet" else "",
        "keepalived_eip_region": stack["Region"],
    }
    if connection == "ssm":
        group_vars.update(
            {
                "ansible_connection": "community.aws.aws_ssm",
                "ansible_aws_ssm_region": stack["Region"],
                "ansible_aws_ssm_bucket_name": ssm_bucket,
            }
        )

    hostvars = {}
    for node in nodes:
        (peer,) = [other for other in nodes if other != node]
        host = {
            "keepalived_eip_instance_id": stack[node + "InstanceId"],
            "keepalived_eip_private_ip": stack[node + "PrivateIp"],
            "keepalived_eip_peer_ip": stack[peer + "PrivateIp"],
            "keepalived_eip_subnet_cidr": stack[node + "SubnetCidr"],
            "keepalived_eip_priority": PRIORITIES[node],
            # Only the higher-priority node takes an address back from its peer on a timer, so a
            # VRRP partition (both MASTER) cannot make the pair pull it back and forth.
            "keepalived_eip_reclaim_from_peer": PRIORITIES[node] > PRIORITIES[peer],
        }
        host["ansible_host"] = host["keepalived_eip_instance_id" if connection == "ssm" else "keepalived_eip_private_ip"]
        hostvars[node.lower()] = host

    return {
        GROUP: {"hosts": sorted(hostvars), "vars": group_vars},
        "_meta": {"hostvars": hostvars},
    }


def main(argv, env):
    if len(argv) == 2 and argv[1] == "--list":
        host = None
    elif len(argv) == 3 and argv[1] == "--host":
        host = argv[2]
    else:
        print("usage: cdk_outputs.py --list | --host NAME", file=sys.stderr)
        return 2
    contract = load_json(CONTRACT, "the outputs contract")
    (default_stack,) = contract["example"]
    outputs_path = env.get("EIP_PAIR_OUTPUTS") or str(REPO / "cdk-outputs.json")
    outputs = load_json(outputs_path, "the CDK outputs file")
    try:
        inventory = build_inventory(
            contract,
            outputs,
            env.get("EIP_PAIR_STACK") or default_stack,
            env.get("EIP_PAIR_CONNECTION") or "ssh",
            env.get("EIP_PAIR_SSM_BUCKET") or "",
        )
    except InventoryError as err:
        raise InventoryError(f"{outputs_path}: {err}") from None
    if host is None:
        result = inventory
    else:
        result = inventory["_meta"]["hostvars"].get(host, {})
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv, os.environ))
    except InventoryError as err:
        print(f"cdk_outputs.py: {err}", file=sys.stderr)
        sys.exit(1)
