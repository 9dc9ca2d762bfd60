#!/usr/bin/env python3
"""The project's EC2 emulator: moto's server, corrected where moto 5.2.1 departs from EC2's
documented behaviour on the calls the Elastic IP + keepalived pattern makes, plus fault injection.

    python3 test/emulator/ec2_emulator.py [--host 127.0.0.1] [--port 0]

Prints one line `EMULATOR_READY http://HOST:PORT` on stdout once it accepts requests. EC2 Query
API on `/`; moto's own API on `/moto-api/`; this emulator's control API on `/_emulator/`:

    POST /_emulator/faults        one rule or a list: {"action": "AssociateAddress" | "*",
                                  "latencyMs": 200, "latencyCount": 1, "throttle": 2,
                                  "error": {"count": 1, "code": "InternalError", "status": 500},
                                  "reset": 1, "malformed": 1,
                                  "dropFields": {"names": ["networkInterfaceId"], "count": 1},
                                  "stale": 3, "skip": 2}
    GET  /_emulator/faults        the rules in force
    GET  /_emulator/inflight      the EC2 actions being served right now (e.g. held by latency)
    POST /_emulator/reset-faults
    GET  /_emulator/log           the EC2 actions served, in order
    POST /_emulator/reset-log
    POST /_emulator/policy        {"allowReassociationByDefault": false}
    POST /_emulator/throttle      EC2's request rate limiting (token buckets), off until set:
                                  {"mutating": {"capacity": 50, "refillPerSecond": 5,
                                                "initialTokens": 5},
                                   "nonMutating": {...}, "unfilteredNonMutating": {...},
                                   "actions": {"AssignPrivateIpAddresses": {...}},
                                   "manualClock": false}
    GET  /_emulator/throttle      the buckets in force: tokens left, calls allowed and throttled
    POST /_emulator/throttle/advance  {"seconds": 1.5}: move the buckets' clock (manualClock only)
    POST /_emulator/iam           one principal or a list: {"accessKeyId": "AKIA…",
                                  "secretAccessKey": "…", "sessionToken": "…" (optional),
                                  "name": "…", "policy": {IAM policy document}}; see IamEnforcer
    GET  /_emulator/iam           the access key ids registered
    POST /_emulator/reset-iam
    POST /_emulator/reset         moto's state, faults, log, policy, throttle and principals

A request with the header `X-Emulator-Observer: 1` (a test harness or IMDS stub looking at the
world, not the account's own API traffic) is neither throttled by the buckets nor logged.

A request with the header `X-Emulator-No-Faults: 1` is served without injected faults or latency
(and logged with "exempt": true): the test harness's own observers (an IMDS stub reading the ENI's
addresses, a benchmark checking where the address went) are not the EC2 client under test.

Each correction is one named function below, applied at import, with the EC2 behaviour it restores.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from typing import Any, Callable, Iterable
from base64 import b64encode
from urllib.parse import parse_qs

# A one-image catalogue instead of moto's ~1,200 per region: resetting the EC2 model (between tests)
# then costs milliseconds instead of a quarter of a second. Set before moto is imported.
os.environ.setdefault(
    "MOTO_AMIS_PATH", os.path.join(os.path.dirname(os.path.abspath(__file__)), "amis.json")
)

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core import errors as moto_errors
from moto.core import serialize as moto_serialize
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_ip_addresses import ElasticAddress, ElasticAddressBackend
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ec2.responses.elastic_ip_addresses import ElasticIPAddresses
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto.ec2.utils import generate_dns_from_ip, random_eip_association_id
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

# --------------------------------------------------------------------------------------------
# Policy: what AssociateAddress does when AllowReassociation is absent.
# The EC2 API reference once said "Default: false" (the call fails if the EIP is associated
# elsewhere) and now says "Reassociation is automatic, but you can specify false"; users still
# report Resource.AlreadyAssociated without the flag. The strict reading is the default here, so a
# client that forgets the flag fails in tests as it can in an account.
# --------------------------------------------------------------------------------------------


@dataclass
class Policy:
    allow_reassociation_by_default: bool = False


POLICY = Policy()

# moto's models are not thread-safe; EC2 applies each call atomically. One lock serialises calls
# into the model (injected latency is spent outside it, so slow calls still overlap).
MODEL_LOCK = threading.Lock()


def _error(code: str, message: str) -> EC2ClientError:
    return EC2ClientError(code, message)


def _as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


# --------------------------------------------------------------------------------------------
# Shared helpers: where an EIP points, and the ENI fields that mirror it.
# --------------------------------------------------------------------------------------------


def _eni_ips(eni: NetworkInterface) -> list[str]:
    return [str(item.get("PrivateIpAddress")) for item in eni.private_ip_addresses]


def _eip_private_ip(eip: ElasticAddress) -> str | None:
    if eip.eni is None:
        return None
    return getattr(eip, "emulator_private_ip", None) or eip.eni.private_ip_address


def _association_of(eip: ElasticAddress) -> dict[str, Any]:
    return {
        "AllocationId": eip.allocation_id,
        "AssociationId": eip.association_id,
        "IpOwnerId": eip.ec2_backend.account_id,
        "PublicDnsName": generate_dns_from_ip(eip.public_ip),
        "PublicIp": eip.public_ip,
    }


def _sync_eni_associations(backend: Any) -> None:
    """Recompute each ENI's association fields from the EIPs, per private IP (EC2 associates an
    EIP with one private IP of one ENI; moto only knows the ENI's primary IP)."""
    by_target = {
        (eip.eni.id, _eip_private_ip(eip)): eip for eip in backend.addresses if eip.eni is not None
    }
    eip_ips = {eip.public_ip for eip in backend.addresses}
    for eni in backend.enis.values():
        for item in eni.private_ip_addresses:
            eip = by_target.get((eni.id, item.get("PrivateIpAddress")))
            if eip is not None:
                item["Association"] = _association_of(eip)
            else:
                item.pop("Association", None)
        primary = by_target.get((eni.id, eni.private_ip_address))
        if primary is not None:
            eni.public_ip = primary.public_ip
        elif eni.public_ip in eip_ips:
            eni.public_ip = None


def _disassociate(eip: ElasticAddress) -> None:
    eip.eni = None
    eip.instance = None
    eip.association_id = None
    eip.emulator_private_ip = None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Corrections to moto's EC2 models.
# --------------------------------------------------------------------------------------------


def correct_associate_address() -> None:
    """AssociateAddress, per the EC2 API reference:
    - "PrivateIpAddress: The primary or secondary private IP address to associate with the Elastic
      IP address. If no private IP address is specified, the Elastic IP address is associated with
      the primary private IP address." moto records the ENI's primary IP whatever was asked.
    - The private IP must be one of the ENI's addresses (EC2 refuses with InvalidParameterValue;
      moto accepts any).
    - "you can specify false to ensure the operation fails if the Elastic IP address is already
      associated with another resource" (Resource.AlreadyAssociated); with true it moves.
    - An instance id means the instance's primary network interface (device index 0).
    """

    def associate_address(
        self: Any,
        instance: Any = None,
        eni: Any = None,
        address: str | None = None,
        allocation_id: str | None = None,
        reassociate: bool | None = None,
        private_ip_address: str | None = None,
    ) -> ElasticAddress:
        eip = (
            self.address_by_ip([address])
            if address
            else self.address_by_allocation([allocation_id])
        )[0]
        if eni is None and instance is not None:
            eni = instance.nics.get(0) or next(iter(instance.nics.values()))
        target_ip = private_ip_address or eni.private_ip_address
        if target_ip not in _eni_ips(eni):
            raise _error(
                "InvalidParameterValue",
                f"The specified private IP address {target_ip} is not assigned to "
                f"network interface {eni.id}.",
            )
        elsewhere = eip.eni is not None and (eip.eni.id, _eip_private_ip(eip)) != (
            eni.id,
            target_ip,
        )
        allowed = POLICY.allow_reassociation_by_default if reassociate is None else reassociate
        if elsewhere and not allowed:
            raise _error(
                "Resource.AlreadyAssociated",
                f"resource {eip.allocation_id} is already associated with associate-id "
                f"{eip.association_id}",
            )
        # One EIP per private IP: an EIP already on the target is disassociated (EC2 does the same
        # for an instance that already has an Elastic IP).
        for other in self.addresses:
            if other is not eip and other.eni is eni and _eip_private_ip(other) == target_ip:
                _disassociate(other)
        eip.eni = eni
        eip.instance = eni.instance
        eip.emulator_private_ip = target_ip  # type: ignore[attr-defined]
        eip.association_id = random_eip_association_id()
        _sync_eni_associations(self)
        return eip

    def associate_address_response(self: Any) -> Any:
        params = self._get_params()
        instance = eni = None
        if "InstanceId" in params:
            instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        elif "NetworkInterfaceId" in params:
            eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
        else:
            raise _error("MissingParameter", "Either InstanceId or NetworkInterfaceId is required.")
        if "AllocationId" not in params and "PublicIp" not in params:
            raise _error("MissingParameter", "The request must contain the parameter AllocationId")
        self.error_on_dryrun()
        eip = self.ec2_backend.associate_address(
            instance=instance,
            eni=eni,
            address=self._get_param("PublicIp"),
            allocation_id=self._get_param("AllocationId"),
            reassociate=_as_bool(self._get_param("AllowReassociation")),
            private_ip_address=self._get_param("PrivateIpAddress"),
        )
        return ActionResult({"AssociationId": eip.association_id})

    ElasticAddressBackend.associate_address = associate_address  # type: ignore[method-assign]
    ElasticIPAddresses.associate_address = associate_address_response  # type: ignore[method-assign]


def correct_disassociate_address() -> None:
    """DisassociateAddress clears the private IP the EIP pointed at, and the ENI's association."""
    original = ElasticAddressBackend.disassociate_address

    def disassociate_address(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for eip in self.addresses:
            if eip.eni is None:
                eip.emulator_private_ip = None
        _sync_eni_associations(self)

    ElasticAddressBackend.disassociate_address = disassociate_address  # type: ignore[method-assign]


def correct_describe_addresses_fields() -> None:
    """DescribeAddresses, per the Address data type: "InstanceId: The ID of the instance that the
    address is associated with (if any)" — for an EIP associated with a network interface, the
    instance the interface is attached to (moto reports ""). "PrivateIpAddress: The private IP
    address associated with the Elastic IP address" — the one associated, not the ENI's primary.
    Fields of an unassociated address are absent, not empty."""

    def instance_id(self: ElasticAddress) -> str | None:
        if self.eni is not None and self.eni.instance is not None:
            return str(self.eni.instance.id)
        return str(self.instance.id) if self.instance else None

    def network_interface_id(self: ElasticAddress) -> str | None:
        return str(self.eni.id) if self.eni else None

    original_filter = ElasticAddress.get_filter_value

    def get_filter_value(
        self: ElasticAddress, filter_name: str, method_name: str | None = None
    ) -> Any:
        if filter_name == "private-ip-address":
            return _eip_private_ip(self)
        if filter_name == "instance-id":
            return instance_id(self)
        if filter_name == "network-interface-owner-id":
            return self.network_interface_owner_id
        return original_filter(self, filter_name, method_name)

    ElasticAddress.instance_id = property(instance_id)  # type: ignore[assignment,method-assign]
    ElasticAddress.network_interface_id = property(network_interface_id)  # type: ignore[assignment,method-assign]
    ElasticAddress.private_ip_address = property(_eip_private_ip)  # type: ignore[assignment,method-assign]
    ElasticAddress.get_filter_value = get_filter_value  # type: ignore[method-assign]


def correct_unknown_allocation_message() -> None:
    """InvalidAllocationID.NotFound names the id ("The allocation ID 'eipalloc-…' does not exist"),
    not a Python set repr."""
    from moto.ec2 import exceptions
    from moto.ec2.models import elastic_ip_addresses

    class InvalidAllocationIdError(EC2ClientError):
        def __init__(self, allocation_id: Any) -> None:
            ids = (
                allocation_id if isinstance(allocation_id, (list, set, tuple)) else [allocation_id]
            )
            names = ", ".join(f"'{i}'" for i in sorted(str(i) for i in ids))
            super().__init__(
                "InvalidAllocationID.NotFound", f"The allocation ID {names} does not exist"
            )

    exceptions.InvalidAllocationIdError = InvalidAllocationIdError  # type: ignore[misc]
    elastic_ip_addresses.InvalidAllocationIdError = InvalidAllocationIdError  # type: ignore[misc]


def _find_holder(backend: Any, eni: NetworkInterface, ip: str) -> NetworkInterface | None:
    for other in backend.enis.values():
        if other is not eni and other.subnet.vpc_id == eni.subnet.vpc_id and ip in _eni_ips(other):
            return other
    return None


def correct_assign_private_ip_addresses() -> None:
    """AssignPrivateIpAddresses, per the EC2 API reference:
    - "AllowReassignment: Indicates whether to allow an IP address that is already assigned to
      another network interface or instance to be reassigned to the specified network interface."
      Without it EC2 refuses an address another interface holds (InvalidIPAddress.InUse); moto
      puts the address on both interfaces.
    - With it the address moves: it leaves the other interface, and "When you move a secondary
      private IP address to another network interface, any Elastic IP address that is associated
      with the IP address is also moved."
    - The address must lie in the interface's subnet (InvalidParameterValue). A primary address
      never moves.
    - AssignedPrivateIpAddresses lists the addresses this call assigned.
    """

    def assign_private_ip_addresses(
        self: Any,
        eni_id: str,
        private_ip_addresses: list[str] | None = None,
        secondary_ips_count: int | None = None,
        allow_reassignment: bool = False,
    ) -> tuple[NetworkInterface, list[str]]:
        eni = self.get_network_interface(eni_id)
        if not private_ip_addresses:
            before = set(_eni_ips(eni))
            original_assign(self, eni_id, None, secondary_ips_count)
            return eni, [ip for ip in _eni_ips(eni) if ip not in before]
        subnet = ipaddress.ip_network(eni.subnet.cidr_block)
        moves: list[tuple[str, NetworkInterface | None]] = []
        for ip in private_ip_addresses:
            if ipaddress.ip_address(ip) not in subnet:
                raise _error(
                    "InvalidParameterValue",
                    f"Address {ip} does not fall within the subnet's address range",
                )
            holder = _find_holder(self, eni, ip)
            if holder is not None and (ip == holder.private_ip_address or not allow_reassignment):
                raise _error("InvalidIPAddress.InUse", f"Address {ip} is in use.")
            moves.append((ip, holder))
        for ip, holder in moves:
            if holder is not None:
                holder.private_ip_addresses = [
                    item
                    for item in holder.private_ip_addresses
                    if item.get("PrivateIpAddress") != ip
                ]
                for eip in self.addresses:
                    if eip.eni is holder and _eip_private_ip(eip) == ip:
                        eip.eni = eni
                        eip.instance = eni.instance
            if ip not in _eni_ips(eni):
                eni.private_ip_addresses.append({"Primary": False, "PrivateIpAddress": ip})
        _sync_eni_associations(self)
        return eni, list(private_ip_addresses)

    def assign_response(self: Any) -> Any:
        eni, assigned = self.ec2_backend.assign_private_ip_addresses(
            self._get_param("NetworkInterfaceId"),
            self._get_param("PrivateIpAddresses", []),
            self._get_int_param("SecondaryPrivateIpAddressCount", 0),
            allow_reassignment=bool(_as_bool(self._get_param("AllowReassignment"))),
        )
        return ActionResult(
            {
                "NetworkInterfaceId": eni.id,
                "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in assigned],
            }
        )

    original_assign = NetworkInterfaceBackend.assign_private_ip_addresses
    NetworkInterfaceBackend.assign_private_ip_addresses = assign_private_ip_addresses  # type: ignore[method-assign]
    ElasticNetworkInterfaces.assign_private_ip_addresses = assign_response  # type: ignore[method-assign]


def correct_unassign_private_ip_addresses() -> None:
    """UnassignPrivateIpAddresses: only the interface's own secondary addresses can be unassigned
    (EC2: InvalidParameterValue "Some of the specified addresses are not assigned to interface";
    moto ignores them), and an Elastic IP associated with an unassigned address is disassociated."""

    def unassign_private_ip_addresses(
        self: Any, eni_id: str, private_ip_address: list[str] | None = None
    ) -> NetworkInterface:
        eni = self.get_network_interface(eni_id)
        ips = list(private_ip_address or [])
        secondaries = [ip for ip in _eni_ips(eni) if ip != eni.private_ip_address]
        if not ips or any(ip not in secondaries for ip in ips):
            raise _error(
                "InvalidParameterValue",
                f"Some of the specified addresses are not assigned to interface {eni.id}",
            )
        eni.private_ip_addresses = [
            item for item in eni.private_ip_addresses if item.get("PrivateIpAddress") not in ips
        ]
        for eip in self.addresses:
            if eip.eni is eni and _eip_private_ip(eip) in ips:
                _disassociate(eip)
        _sync_eni_associations(self)
        return eni

    NetworkInterfaceBackend.unassign_private_ip_addresses = unassign_private_ip_addresses  # type: ignore[method-assign]


def correct_eni_private_ip_filters() -> None:
    """DescribeNetworkInterfaces filters "addresses.private-ip-address - The private IPv4
    addresses associated with the network interface" and "private-ip-address - The private IPv4
    address or addresses of the network interface" match secondary addresses too (moto: primary
    only)."""
    original = NetworkInterface.get_filter_value

    def get_filter_value(
        self: NetworkInterface, filter_name: str, method_name: str | None = None
    ) -> Any:
        if filter_name in ("addresses.private-ip-address", "private-ip-address"):
            return _eni_ips(self)
        return original(self, filter_name, method_name)

    NetworkInterface.get_filter_value = get_filter_value  # type: ignore[method-assign]


def correct_instance_private_ip_associations() -> None:
    """DescribeInstances NetworkInterfaces[].PrivateIpAddresses[].Association belongs to the
    private IP the Elastic IP is associated with (moto always puts it on the primary)."""

    def instance_private_ip_address_list(self: NetworkInterface) -> list[dict[str, Any]]:
        items = []
        for address in self.private_ip_addresses:
            item: dict[str, Any] = {
                "PrivateIpAddress": address.get("PrivateIpAddress"),
                "Primary": address.get("PrivateIpAddress") == self.private_ip_address,
            }
            if "Association" in address:
                item["Association"] = address["Association"]
            items.append(item)
        return items

    NetworkInterface.instance_private_ip_address_list = property(instance_private_ip_address_list)  # type: ignore[assignment,method-assign]


# Protocols for which EC2 security group rules carry ports.
_PORTED_PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6", "6", "17", "1", "58"}


def correct_portless_protocol_rules() -> None:
    """AuthorizeSecurityGroupIngress/Egress, per the IpPermission data type: "If you specify -1 or
    a protocol other than tcp, udp, icmp, or icmpv6, traffic on all ports is allowed, regardless of
    any ports you specify." So a rule for protocol 112 (VRRP) has no ports; moto crashes converting
    the missing ports to int (HTTP 500)."""
    original = SecurityGroupRule.__init__

    def __init__(
        self: SecurityGroupRule,
        ec2_backend: Any,
        ip_protocol: str,
        group_id: str,
        from_port: str | None,
        to_port: str | None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        protocol = str(ip_protocol).lower() if ip_protocol else ""
        if protocol in _PORTED_PROTOCOLS or protocol in ("", "-1", "all"):
            original(self, ec2_backend, ip_protocol, group_id, from_port, to_port, *args, **kwargs)
            return
        original(self, ec2_backend, "-1", group_id, None, None, *args, **kwargs)
        self.ip_protocol = str(ip_protocol)

    SecurityGroupRule.__init__ = __init__  # type: ignore[method-assign]


# EC2 answers these errors with a status other than moto's default 400.
_ERROR_STATUS = {"DryRunOperation": 412}


def correct_error_status() -> None:
    """DryRun: "If you have the required permissions, the error response is DryRunOperation" —
    with HTTP 412 Precondition Failed, which clients key on; moto answers 400."""
    original = moto_errors.get_error_model

    def get_error_model(exception: Exception, service_model: Any) -> Any:
        shape = original(exception, service_model)
        status = _ERROR_STATUS.get(str(getattr(exception, "code", "")))
        if status is not None:
            shape.metadata.setdefault("error", {})["httpStatusCode"] = status
        return shape

    moto_serialize.get_error_model = get_error_model  # type: ignore[assignment]


CORRECTIONS: list[Callable[[], None]] = [
    correct_associate_address,
    correct_disassociate_address,
    correct_describe_addresses_fields,
    correct_unknown_allocation_message,
    correct_assign_private_ip_addresses,
    correct_unassign_private_ip_addresses,
    correct_eni_private_ip_filters,
    correct_instance_private_ip_associations,
    correct_portless_protocol_rules,
    correct_error_status,
]

for _correction in CORRECTIONS:
    _correction()


# --------------------------------------------------------------------------------------------
# Fault injection and the action log.
# --------------------------------------------------------------------------------------------

READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Search")
# EC2's answer to a throttled request, injected or from a bucket.
THROTTLED: dict[str, Any] = {
    "status": 503,
    "code": "RequestLimitExceeded",
    "message": "Request limit exceeded.",
}


@dataclass
class ActionFaults:
    """The faults set for one action. Counted faults apply to the next N calls; `skip` lets that
    many calls of the action pass untouched first (so a test can aim at, say, the third call)."""

    latency_ms: int = 0
    #: None: every call until reset; otherwise the next N calls only.
    latency_count: int | None = None
    throttle: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    reset: int = 0
    malformed: int = 0
    drop_fields: list[str] = field(default_factory=list)
    #: None: every call until reset; otherwise the next N calls only.
    drop_count: int | None = None
    stale: int = 0
    skip: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "latencyCount": self.latency_count,
            "throttle": self.throttle,
            "errors": self.errors,
            "reset": self.reset,
            "malformed": self.malformed,
            "dropFields": {"names": self.drop_fields, "count": self.drop_count},
            "stale": self.stale,
            "skip": self.skip,
        }


@dataclass
class Fault:
    """What to do with one call: spend latency, then answer with an injected error, close the
    connection, or serve it and then corrupt the answer."""

    latency_ms: int = 0
    error: dict[str, Any] | None = None
    reset: bool = False
    malformed: bool = False
    drop_fields: list[str] = field(default_factory=list)


@dataclass
class StaleView:
    """Eventual consistency: DescribeAddresses answers the associations as they were before the
    last mutating call, for `remaining` more calls."""

    remaining: int = 0
    #: allocation id → (eni, instance, association id, private IP) before the change.
    snapshot: dict[str, tuple[Any, Any, Any, Any]] = field(default_factory=dict)


def _count(value: Any) -> int:
    return max(0, int(value))


# EC2's request rate limiting ("Request throttling for the Amazon EC2 API", EC2 developer guide):
# "each API is evaluated individually ... Each request that you make removes one token from the
# API's bucket"; buckets "refill at a set rate" up to a "maximum capacity", and a request finding
# the bucket empty fails with RequestLimitExceeded. Sizes go by category (mutating 50/5 per second,
# non-mutating 100/20, some actions their own, e.g. AssignPrivateIpAddresses 100/5), and "a
# specific subset of non-mutating API actions that, when requested without specifying either
# pagination or a filter, use tokens from a smaller token bucket" (50/10). The documentation
# exempts no request, so a DryRun request takes a token like any other. Refill is continuous (the documented rates include
# fractions such as 0.1 per second).
UNFILTERED_SUBSET = frozenset(
    {
        "DescribeInstances",
        "DescribeInstanceStatus",
        "DescribeNetworkInterfaces",
        "DescribeSecurityGroups",
        "DescribeSnapshots",
        "DescribeSpotInstanceRequests",
        "DescribeVolumes",
    }
)
_PAGINATION_OR_FILTER = re.compile(r"^(?:Filter\.\d+\.|MaxResults$|NextToken$)")


@dataclass
class BucketSpec:
    capacity: float
    refill_per_second: float
    initial_tokens: float

    @staticmethod
    def parse(raw: Any, where: str) -> BucketSpec:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object with capacity and refillPerSecond")
        capacity = float(raw["capacity"])
        refill = float(raw["refillPerSecond"])
        initial = float(raw.get("initialTokens", capacity))
        if capacity < 1 or refill < 0 or not 0 <= initial <= capacity:
            raise ValueError(
                f"{where}: need capacity >= 1, refillPerSecond >= 0, 0 <= initialTokens <= capacity"
            )
        return BucketSpec(capacity, refill, initial)

    def to_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "refillPerSecond": self.refill_per_second,
            "initialTokens": self.initial_tokens,
        }


@dataclass
class Bucket:
    spec: BucketSpec
    tokens: float
    updated: float
    allowed: int = 0
    throttled: int = 0

    def take(self, now: float) -> bool:
        """Refills for the time passed, then takes one token if there is one."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.spec.capacity, self.tokens + elapsed * self.spec.refill_per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.allowed += 1
            return True
        self.throttled += 1
        return False


class Throttle:
    """Per-action token buckets sized by category; off (every call allowed) until configured."""

    CATEGORIES = ("mutating", "nonMutating", "unfilteredNonMutating")

    def __init__(self) -> None:
        self.specs: dict[str, BucketSpec] = {}
        self.action_specs: dict[str, BucketSpec] = {}
        self.buckets: dict[str, Bucket] = {}
        self.manual_clock = False
        self.manual_now = 0.0

    def now(self) -> float:
        return self.manual_now if self.manual_clock else time.monotonic()

    def configure(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise ValueError("the throttle configuration is a JSON object")
        unknown = set(payload) - {*self.CATEGORIES, "actions", "manualClock"}
        if unknown:
            raise ValueError(f"unknown throttle keys: {', '.join(sorted(unknown))}")
        specs = {c: BucketSpec.parse(payload[c], c) for c in self.CATEGORIES if c in payload}
        actions = payload.get("actions") or {}
        if not isinstance(actions, dict):
            raise ValueError('"actions" maps EC2 action names to bucket specs')
        action_specs = {a: BucketSpec.parse(v, f"actions.{a}") for a, v in actions.items()}
        self.specs, self.action_specs, self.buckets = specs, action_specs, {}
        self.manual_clock = bool(payload.get("manualClock", False))
        self.manual_now = 0.0

    def advance(self, seconds: float) -> None:
        if not self.manual_clock:
            raise ValueError("advance needs a throttle configured with manualClock: true")
        self.manual_now += max(0.0, float(seconds))

    @staticmethod
    def bucket_key(action: str, params: dict[str, str]) -> tuple[str, str]:
        """The bucket a request draws from, and the category that sizes it."""
        if action.startswith(READ_ONLY_PREFIXES):
            narrowed = any(_PAGINATION_OR_FILTER.match(p) for p in params)
            if action in UNFILTERED_SUBSET and not narrowed:
                return f"{action}/unfiltered", "unfilteredNonMutating"
            return action, "nonMutating"
        return action, "mutating"

    def admit(self, action: str, params: dict[str, str]) -> bool:
        key, category = self.bucket_key(action, params)
        bucket = self.buckets.get(key)
        if bucket is None:
            spec = self.action_specs.get(action) or self.specs.get(category)
            if spec is None:
                return True
            bucket = self.buckets[key] = Bucket(spec, spec.initial_tokens, self.now())
        return bucket.take(self.now())

    def to_json(self) -> dict[str, Any]:
        now = self.now()
        buckets = {}
        for key, b in self.buckets.items():
            refilled = b.tokens + max(0.0, now - b.updated) * b.spec.refill_per_second
            tokens = min(b.spec.capacity, refilled)
            buckets[key] = {
                **b.spec.to_json(),
                "tokens": round(tokens, 3),
                "allowed": b.allowed,
                "throttled": b.throttled,
            }
        return {
            "enabled": bool(self.specs or self.action_specs),
            "manualClock": self.manual_clock,
            **{c: s.to_json() for c, s in self.specs.items()},
            "actions": {a: s.to_json() for a, s in self.action_specs.items()},
            "buckets": buckets,
        }


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: dict[str, ActionFaults] = {}
        self.log: list[dict[str, Any]] = []
        self.inflight: dict[int, dict[str, Any]] = {}
        self.next_inflight = 0
        self.stale = StaleView()
        self.throttle = Throttle()

    def admit(self, action: str, params: dict[str, str]) -> dict[str, Any] | None:
        """The bucket's answer: None to serve the call, or EC2's throttling error."""
        with self.lock:
            if self.throttle.admit(action, params):
                return None
        return {**THROTTLED, "fault": "bucket"}

    def add_fault(self, rule: dict[str, Any]) -> None:
        action = rule.get("action")
        if not isinstance(action, str) or not action:
            raise ValueError('each rule needs "action" (an EC2 action name, or "*")')
        with self.lock:
            faults = self.faults.setdefault(action, ActionFaults())
            if "latencyMs" in rule:
                faults.latency_ms = _count(rule["latencyMs"])
                count = rule.get("latencyCount")
                faults.latency_count = None if count is None else _count(count)
            if "throttle" in rule:
                faults.throttle = _count(rule["throttle"])
            if "error" in rule:
                error = dict(rule["error"])
                status = int(error.get("status", 500))
                faults.errors.append(
                    {
                        "count": _count(error.get("count", 1)),
                        "status": status,
                        "code": str(
                            error.get("code")
                            or ("Unavailable" if status == 503 else "InternalError")
                        ),
                        "message": str(error.get("message") or "An internal error has occurred"),
                    }
                )
            if "reset" in rule:
                faults.reset = _count(rule["reset"])
            if "malformed" in rule:
                faults.malformed = _count(rule["malformed"])
            if "dropFields" in rule:
                drop = rule["dropFields"]
                names = drop.get("names") if isinstance(drop, dict) else drop
                if not isinstance(names, list) or not all(
                    isinstance(n, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", n) for n in names
                ):
                    raise ValueError('"dropFields" names XML elements: {"names": ["publicIp"]}')
                faults.drop_fields = list(names)
                count = drop.get("count") if isinstance(drop, dict) else None
                faults.drop_count = None if count is None else _count(count)
            if "stale" in rule:
                if action != "DescribeAddresses":
                    raise ValueError('"stale" applies to DescribeAddresses only')
                faults.stale = _count(rule["stale"])
            if "skip" in rule:
                faults.skip = _count(rule["skip"])

    def take_fault(self, action: str) -> Fault:
        """What to do with this call of the action (an empty Fault: serve it normally)."""
        with self.lock:
            rules = [r for r in (self.faults.get(action), self.faults.get("*")) if r is not None]
            live = []
            for rule in rules:
                if rule.skip > 0:
                    rule.skip -= 1
                else:
                    live.append(rule)
            fault = Fault()
            for rule in live:
                if rule.latency_ms and rule.latency_count != 0:
                    fault.latency_ms = max(fault.latency_ms, rule.latency_ms)
                    if rule.latency_count is not None:
                        rule.latency_count -= 1
            for rule in live:
                if rule.reset > 0:
                    rule.reset -= 1
                    fault.reset = True
                    return fault
            for rule in live:
                if rule.throttle > 0:
                    rule.throttle -= 1
                    fault.error = {
                        "status": 503,
                        "code": "RequestLimitExceeded",
                        "message": "Request limit exceeded.",
                        "fault": "throttle",
                    }
                    return fault
            for rule in live:
                while rule.errors and rule.errors[0]["count"] <= 0:
                    rule.errors.pop(0)
                if rule.errors:
                    error = rule.errors[0]
                    error["count"] -= 1
                    fault.error = {**error, "fault": "error"}
                    return fault
            for rule in live:
                if rule.malformed > 0:
                    rule.malformed -= 1
                    fault.malformed = True
                    return fault
            for rule in live:
                if rule.drop_fields and rule.drop_count != 0:
                    fault.drop_fields = list(rule.drop_fields)
                    if rule.drop_count is not None:
                        rule.drop_count -= 1
            return fault

    def stale_armed(self) -> int:
        """How many DescribeAddresses calls answer stale after a change (0: consistent reads)."""
        with self.lock:
            rule = self.faults.get("DescribeAddresses")
            return rule.stale if rule is not None else 0

    def begin(self, action: str, started_at: str) -> int:
        with self.lock:
            self.next_inflight += 1
            self.inflight[self.next_inflight] = {"action": action, "startedAt": started_at}
            return self.next_inflight

    def end(self, ticket: int) -> None:
        with self.lock:
            self.inflight.pop(ticket, None)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["seq"] = len(self.log) + 1
            self.log.append(entry)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {action: f.to_json() for action, f in self.faults.items()}

    def reset_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.stale = StaleView()

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()


def _all_addresses() -> list[ElasticAddress]:
    """Every Elastic IP in every account and region the model holds (without creating any)."""
    found: list[ElasticAddress] = []
    for account in dict.values(ec2_backends):
        for backend in dict.values(account):
            found.extend(backend.addresses)
    return found


def _association_state(eip: ElasticAddress) -> tuple[Any, Any, Any, Any]:
    return (eip.eni, eip.instance, eip.association_id, getattr(eip, "emulator_private_ip", None))


def _set_association_state(eip: ElasticAddress, value: tuple[Any, Any, Any, Any]) -> None:
    eip.eni, eip.instance, eip.association_id, eip.emulator_private_ip = value  # type: ignore[attr-defined]


def malformed_body(body: bytes) -> bytes:
    """A 200 answer no XML parser can read: the document cut in the middle of an element, then
    bytes that are not XML at all."""
    cut = body[: max(1, len(body) // 2)]
    return cut + b"<<\x00garbage&&</"


def drop_elements(body: bytes, names: Iterable[str]) -> bytes:
    """The answer without the named elements (every occurrence, with their content)."""
    for name in names:
        tag = re.escape(name.encode())
        body = re.sub(rb"<" + tag + rb"\s*/>", b"", body)
        body = re.sub(rb"<" + tag + rb">.*?</" + tag + rb">", b"", body, flags=re.S)
    return body


def reset_connection(environ: dict[str, Any]) -> None:
    """Closes the client's connection with a TCP reset instead of an answer."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Ends the exchange at once (the server would otherwise wait for the next keep-alive
        # request); the close that follows sends the reset.
        sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats a ConnectionError from the app as a dropped connection and writes nothing.
    raise ConnectionResetError("fault injected: connection reset")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ec2_error_body(code: str, message: str) -> bytes:
    """EC2's Query API error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


# --------------------------------------------------------------------------------------------
# IAM enforcement (opt-in): moto 5.2.1 checks signatures and matches actions, but passes "*" as
# the resource of every EC2 action (so a policy scoped to ARNs never allows anything), treats every
# Condition as satisfied, answers AccessDenied rather than EC2's UnauthorizedOperation (DryRun
# too), and once switched on (/moto-api/reset-auth) applies to every caller, test setup included.
# This layer evaluates identity-based policies for registered access keys only.
# --------------------------------------------------------------------------------------------

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SIGNED_HEADERS_RE = re.compile(r"SignedHeaders=([^,\s]+)")
_SIGNATURE_RE = re.compile(r"Signature=([0-9a-f]+)")


@dataclass
class Principal:
    access_key_id: str
    policy: dict[str, Any]
    name: str = "eip-failover"
    secret_access_key: str | None = None
    session_token: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{self.name}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one character; nothing else is special."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _statement_matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    """Whether the statement's Action/NotAction (case-insensitive) and Resource/NotResource
    (case-sensitive) cover this action on this resource. Conditions are not looked at here."""
    if "NotAction" in statement:
        if any(_wildcard(p, action, True) for p in _as_list(statement["NotAction"])):
            return False
    elif not any(_wildcard(p, action, True) for p in _as_list(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        return not any(_wildcard(p, resource, False) for p in _as_list(statement["NotResource"]))
    return any(_wildcard(p, resource, False) for p in _as_list(statement.get("Resource")))


def evaluate_policy(policy: dict[str, Any], action: str, resource: str) -> str:
    """IAM's identity-based evaluation for one action on one resource: "deny" when a Deny statement
    matches (explicit deny wins), else "allow" when an Allow statement matches, else "implicit"
    (no statement allows it; refused).

    Conditions cannot be evaluated here (the emulator has no request context: no aws:SourceIp,
    no tags, no aws:RequestedRegion semantics), so the evaluator errs towards refusing: an Allow
    statement with a Condition never allows, a Deny statement with a Condition always denies."""
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, dict) or not _statement_matches(statement, action, resource):
            continue
        if statement.get("Effect") == "Deny":
            return "deny"
        if statement.get("Effect") == "Allow" and not statement.get("Condition"):
            allowed = True
    return "allow" if allowed else "implicit"


def _ec2_arn(region: str, kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{region}:{DEFAULT_ACCOUNT_ID}:{kind}/{resource_id}"


def _allocation_of_public_ip(region: str, public_ip: str) -> str:
    from moto.ec2.models import ec2_backends

    with MODEL_LOCK:
        for eip in ec2_backends[DEFAULT_ACCOUNT_ID][region].addresses:
            if eip.public_ip == public_ip:
                return str(eip.allocation_id)
    return public_ip


def request_resources(action: str, params: dict[str, str], region: str) -> list[str]:
    """The resources EC2 authorizes an action against, per the Service Authorization Reference,
    built from the ids the request names:
    - AssociateAddress: the elastic-ip, and the network-interface and/or instance named;
    - AssignPrivateIpAddresses / UnassignPrivateIpAddresses: the network-interface;
    - DisassociateAddress: the elastic-ip is not named by the request (an association id), "*";
    - Describe* and everything else: "*" (no resource-level permissions)."""
    if action == "AssociateAddress":
        allocation = params.get("AllocationId") or _allocation_of_public_ip(
            region, params.get("PublicIp", "")
        )
        resources = [_ec2_arn(region, "elastic-ip", allocation)]
        if params.get("NetworkInterfaceId"):
            resources.append(_ec2_arn(region, "network-interface", params["NetworkInterfaceId"]))
        if params.get("InstanceId"):
            resources.append(_ec2_arn(region, "instance", params["InstanceId"]))
        return resources
    if action in ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses"):
        return [_ec2_arn(region, "network-interface", params.get("NetworkInterfaceId", ""))]
    return ["*"]


def _signature_valid(principal: Principal, environ: dict[str, Any], body: bytes) -> bool:
    """SigV4 recomputed with the principal's secret over the headers the client signed."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = _CREDENTIAL_RE.search(auth)
    signed = _SIGNED_HEADERS_RE.search(auth)
    signature = _SIGNATURE_RE.search(auth)
    if not (scope and signed and signature):
        return False
    headers: dict[str, str] = {}
    for name in signed.group(1).split(";"):
        key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(
            name, "HTTP_" + name.upper().replace("-", "_")
        )
        if key not in environ:
            return False
        headers[name] = str(environ[key])
    path = environ.get("PATH_INFO", "/") or "/"
    if environ.get("QUERY_STRING"):
        path += "?" + environ["QUERY_STRING"]
    request = AWSRequest(
        method=environ.get("REQUEST_METHOD", "POST"), url=path, data=body, headers=headers
    )
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(
        Credentials(
            principal.access_key_id, principal.secret_access_key or "", principal.session_token
        ),
        scope.group(3),
        scope.group(2),
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return expected == signature.group(1)


@dataclass
class IamDecision:
    status: int
    code: str
    message: str


class IamEnforcer:
    """Callers whose access key id is registered are authenticated (SigV4 when a secret is given;
    the session token when one is given) and authorized against their policy; callers whose key is
    not registered (the tests' own setup client) are served as before. Nothing registered: off."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.principals: dict[str, Principal] = {}

    def register(self, spec: dict[str, Any]) -> None:
        key = spec.get("accessKeyId")
        policy = spec.get("policy")
        if not isinstance(key, str) or not key or not isinstance(policy, dict):
            raise ValueError('each principal needs "accessKeyId" and "policy" (a policy document)')
        for statement in _as_list(policy.get("Statement")):
            if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
                raise ValueError("each statement needs Effect Allow or Deny")
        with self.lock:
            self.principals[key] = Principal(
                access_key_id=key,
                policy=policy,
                name=str(spec.get("name") or "eip-failover"),
                secret_access_key=spec.get("secretAccessKey"),
                session_token=spec.get("sessionToken"),
            )

    def keys(self) -> list[str]:
        with self.lock:
            return sorted(self.principals)

    def reset(self) -> None:
        with self.lock:
            self.principals.clear()

    def decide(
        self, environ: dict[str, Any], body: bytes, action: str, params: dict[str, str]
    ) -> IamDecision | None:
        """None: serve the request. Otherwise the error EC2 answers with."""
        scope = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope is None:
            return None
        with self.lock:
            principal = self.principals.get(scope.group(1))
        if principal is None:
            return None
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
        if principal.session_token is not None and token != principal.session_token:
            return IamDecision(
                401, "AuthFailure", "AWS was not able to validate the provided access credentials"
            )
        if principal.secret_access_key is not None and not _signature_valid(
            principal, environ, body
        ):
            return IamDecision(
                401, "AuthFailure", "AWS was not able to validate the provided access credentials"
            )
        region = scope.group(2)
        iam_action = f"ec2:{action}"
        for resource in request_resources(action, params, region):
            verdict = evaluate_policy(principal.policy, iam_action, resource)
            if verdict == "allow":
                continue
            why = (
                "with an explicit deny in an identity-based policy"
                if verdict == "deny"
                else f"because no identity-based policy allows the {iam_action} action"
            )
            detail = (
                f"User: {principal.arn} is not authorized to perform: {iam_action} "
                f"on resource: {resource} {why}"
            )
            encoded = b64encode(detail.encode()).decode()
            return IamDecision(
                403,
                "UnauthorizedOperation",
                f"You are not authorized to perform this operation. {detail}. "
                f"Encoded authorization failure message: {encoded}",
            )
        return None


_CODE_RE = re.compile(rb"<Code>([^<]+)</Code>")
def _access_key_id(environ: dict[str, Any]) -> str | None:
    """The caller, as SigV4 names it: the access key id in the Authorization header."""
    match = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None
_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    412: "Precondition Failed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

StartResponse = Callable[..., Any]


class EmulatorApp:
    """WSGI: the control API on /_emulator/, EC2 actions with faults and logging, the rest to moto."""

    def __init__(self, moto_app: Any, state: EmulatorState, iam: IamEnforcer | None = None) -> None:
        self.moto_app = moto_app
        self.state = state
        self.iam = iam if iam is not None else IamEnforcer()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self.control(environ, start_response, path[len("/_emulator/") :])
        body = self.read_body(environ)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        action = form.get("Action", [None])[0]
        if not action:
            return self.moto_app(environ, start_response)
        return self.serve_action(environ, start_response, action, form, body)

    @staticmethod
    def read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = BytesIO(body)
        return body

    def serve_action(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        action: str,
        form: dict[str, list[str]],
        raw_body: bytes = b"",
    ) -> Iterable[bytes]:
        started_at, started = _now(), time.monotonic()
        params = {k: v[0] for k, v in form.items() if k not in ("Action", "Version")}
        if environ.get("HTTP_X_EMULATOR_OBSERVER") == "1":
            # An observer's look at the world: no faults, no bucket, not in the log.
            status_line, headers, body = self.serve_model(environ, action, params)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            start_response(status_line, [*headers, ("Content-Length", str(len(body)))])
            return [body]
        exempt = environ.get("HTTP_X_EMULATOR_NO_FAULTS") == "1"
        refusal = self.iam.decide(environ, raw_body, action, params)
        if refusal is not None:
            # IAM refuses before anything else happens: no fault, no token taken.
            fault = Fault()
            fault.error = {
                "status": refusal.status,
                "code": refusal.code,
                "message": refusal.message,
                "fault": None,
            }
        else:
            fault = Fault() if exempt else self.state.take_fault(action)
        if fault.error is None and not fault.reset and not exempt:
            fault.error = self.state.admit(action, params)
        ticket = self.state.begin(action, started_at)
        try:
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.reset:
                self.record(environ, action, params, started_at, started, 0, None, "reset")
                reset_connection(environ)
            if fault.error is not None:
                status, code = fault.error["status"], fault.error["code"]
                body = ec2_error_body(code, fault.error["message"])
                headers = [("Content-Type", "text/xml;charset=UTF-8")]
                status_line = f"{status} {_STATUS_TEXT.get(status, 'Error')}"
            else:
                status_line, headers, body = self.serve_model(environ, action, params)
                status = int(status_line.split(" ", 1)[0])
                match = _CODE_RE.search(body) if status >= 400 else None
                code = match.group(1).decode() if match else None
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                if status == 200 and fault.malformed:
                    body = malformed_body(body)
                elif status == 200 and fault.drop_fields:
                    body = drop_elements(body, fault.drop_fields)
            start_response(status_line, [*headers, ("Content-Length", str(len(body)))])
            injected = (
                fault.error["fault"]
                if fault.error
                else "malformed"
                if fault.malformed and status == 200
                else "dropFields"
                if fault.drop_fields and status == 200
                else None
            )
            self.record(environ, action, params, started_at, started, status, code, injected)
            return [body]
        finally:
            self.state.end(ticket)

    def serve_model(
        self, environ: dict[str, Any], action: str, params: dict[str, str]
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The call served by moto's model (with stale DescribeAddresses when so asked)."""
        captured: dict[str, Any] = {}

        def capture(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status_line"], captured["headers"] = status_line, headers
            return lambda _data: None

        mutating = not action.startswith(READ_ONLY_PREFIXES)
        dry_run = params.get("DryRun", "").lower() == "true"
        stale_calls = self.state.stale_armed()
        with MODEL_LOCK:
            before = (
                {e.allocation_id: _association_state(e) for e in _all_addresses()}
                if stale_calls and mutating and not dry_run
                else None
            )
            stale = self.state.stale
            serve_stale = action == "DescribeAddresses" and stale.remaining > 0
            current: dict[str, tuple[Any, Any, Any, Any]] = {}
            if serve_stale:
                stale.remaining -= 1
                for eip in _all_addresses():
                    if eip.allocation_id in stale.snapshot:
                        current[eip.allocation_id] = _association_state(eip)
                        _set_association_state(eip, stale.snapshot[eip.allocation_id])
            try:
                chunks = self.moto_app(environ, capture)
                try:
                    body = b"".join(chunks)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
            finally:
                for eip in _all_addresses():
                    if eip.allocation_id in current:
                        _set_association_state(eip, current[eip.allocation_id])
            if before is not None and captured["status_line"].startswith("200"):
                # Reads keep showing the oldest state not yet visible; a new change restarts the wait.
                if stale.remaining == 0:
                    stale.snapshot = before
                stale.remaining = stale_calls
        return captured["status_line"], captured["headers"], body

    def record(
        self,
        environ: dict[str, Any],
        action: str,
        params: dict[str, str],
        started_at: str,
        started: float,
        status: int,
        code: str | None,
        fault: str | None,
    ) -> None:
        self.state.record(
            {
                "action": action,
                "accessKeyId": _access_key_id(environ),
                "params": params,
                "mutating": not action.startswith(READ_ONLY_PREFIXES),
                "dryRun": params.get("DryRun", "").lower() == "true",
                "status": status,
                "errorCode": code,
                "fault": fault,
                "exempt": environ.get("HTTP_X_EMULATOR_NO_FAULTS") == "1",
                "startedAt": started_at,
                "finishedAt": _now(),
                "durationMs": round((time.monotonic() - started) * 1000, 1),
            }
        )

    def control(
        self, environ: dict[str, Any], start_response: StartResponse, command: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            payload = json.loads(self.read_body(environ) or b"null")
            result = self.dispatch_control(method, command, payload)
            status, reply = (
                (200, result)
                if result is not None
                else (404, {"error": f"no {method} /_emulator/{command}"})
            )
        except (ValueError, TypeError, KeyError) as err:
            status, reply = 400, {"error": str(err)}
        body = json.dumps(reply).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def dispatch_control(self, method: str, command: str, payload: Any) -> Any:
        state = self.state
        if (method, command) == ("GET", "log"):
            with state.lock:
                return list(state.log)
        if (method, command) == ("GET", "faults"):
            return state.snapshot()
        if (method, command) == ("GET", "throttle"):
            with state.lock:
                return state.throttle.to_json()
        if (method, command) == ("GET", "inflight"):
            with state.lock:
                return list(state.inflight.values())
        if (method, command) == ("GET", "iam"):
            return {"accessKeyIds": self.iam.keys()}
        if method != "POST":
            return None
        if command == "faults":
            for rule in payload if isinstance(payload, list) else [payload]:
                if not isinstance(rule, dict):
                    raise ValueError("a fault rule is a JSON object")
                state.add_fault(rule)
            return state.snapshot()
        if command == "reset-faults":
            state.reset_faults()
            return {}
        if command == "reset-log":
            state.reset_log()
            return {}
        if command == "throttle":
            with state.lock:
                state.throttle.configure(payload)
                return state.throttle.to_json()
        if command == "throttle/advance":
            if not isinstance(payload, dict) or "seconds" not in payload:
                raise ValueError('advance takes {"seconds": N}')
            with state.lock:
                state.throttle.advance(payload["seconds"])
                return state.throttle.to_json()
        if command == "policy":
            if isinstance(payload, dict) and "allowReassociationByDefault" in payload:
                POLICY.allow_reassociation_by_default = bool(payload["allowReassociationByDefault"])
            return {"allowReassociationByDefault": POLICY.allow_reassociation_by_default}
        if command == "iam":
            for spec in payload if isinstance(payload, list) else [payload]:
                if not isinstance(spec, dict):
                    raise ValueError("a principal is a JSON object")
                self.iam.register(spec)
            return {"accessKeyIds": self.iam.keys()}
        if command == "reset-iam":
            self.iam.reset()
            return {}
        if command == "reset":
            with MODEL_LOCK:
                moto_api_backend.reset()
            self.iam.reset()
            state.reset_faults()
            state.reset_log()
            with state.lock:
                state.throttle = Throttle()
            POLICY.allow_reassociation_by_default = False
            return {}
        return None


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


def _watch_parent(parent: int, server: Any) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto's EC2, corrected, with fault injection")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one dies (no orphans if a test runner is killed)",
    )
    args = parser.parse_args(argv)

    app = EmulatorApp(DomainDispatcherApplication(create_backend_app), EmulatorState())
    handler = WSGIRequestHandler if args.verbose else QuietHandler
    server = make_server(args.host, args.port, app, threaded=True, request_handler=handler)

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(), server), daemon=True).start()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"EMULATOR_READY http://{host}:{server.server_port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
