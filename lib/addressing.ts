import { Token } from 'aws-cdk-lib';

/** Where the pair's nodes sit, and so how the Elastic IP follows the active node. */
export type FailoverMode = 'same-subnet' | 'cross-az';

export const FAILOVER_MODES: readonly FailoverMode[] = ['same-subnet', 'cross-az'];

/** Size of the block the pair reserves in each of its subnets (a /28: 16 addresses). */
const BLOCK_SIZE = 16;
/** Inside the block: the primary node, the secondary node, and the VIP. */
const PRIMARY_OFFSET = 4;
const SECONDARY_OFFSET = 5;
const VIP_OFFSET = 14;

/** The addresses the pair uses, all chosen at synth time so that the policy and outputs know them. */
export interface AddressPlan {
  /** Per subnet (same order as the input), the /28 reserved explicitly for the pair. */
  readonly reservedBlocks: readonly string[];
  readonly primaryIp: string;
  readonly secondaryIp: string;
  /** The floating secondary private IP; undefined in cross-az mode. */
  readonly vip: string | undefined;
}

export interface AddressPlanInput {
  readonly mode: FailoverMode;
  /** One CIDR (same-subnet) or two (cross-az): the subnets of the primary and the secondary. */
  readonly subnetCidrs: readonly string[];
  /** Offset of the reserved /28 from the start of each subnet; a multiple of 16, at least 16. */
  readonly blockOffset: number;
  readonly vip?: string | undefined;
}

export function parseIpv4(text: string): number | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!match) return undefined;
  let value = 0;
  for (const part of match.slice(1)) {
    const octet = Number(part);
    if (octet > 255 || (part.length > 1 && part.startsWith('0'))) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export interface Ipv4Cidr {
  readonly base: number;
  readonly prefix: number;
  readonly size: number;
}

export function parseCidr(text: string): Ipv4Cidr | undefined {
  const [address, prefixText, ...rest] = text.split('/');
  if (address === undefined || prefixText === undefined || rest.length > 0) return undefined;
  if (!/^\d{1,2}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const base = parseIpv4(address);
  if (base === undefined || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) return undefined;
  return { base, prefix, size };
}

export function cidrContains(cidr: Ipv4Cidr, ip: number): boolean {
  return ip >= cidr.base && ip < cidr.base + cidr.size;
}

/** The first four addresses and the last one of every VPC subnet belong to AWS. */
function isAwsReserved(cidr: Ipv4Cidr, ip: number): boolean {
  return ip - cidr.base < 4 || ip === cidr.base + cidr.size - 1;
}

/**
 * Chooses the nodes' primary private IPs and the VIP deterministically inside a /28 that the stack
 * reserves explicitly in each subnet: EC2 never hands an address from an explicit reservation to
 * another interface, so nothing (a VPC endpoint, another instance) can take the VIP while it is
 * unassigned, or a node's address before its ENI exists.
 *
 * Throws with the fix when a combination cannot work.
 */
export function planAddresses(input: AddressPlanInput): AddressPlan {
  const { mode, subnetCidrs, blockOffset, vip } = input;
  const expectedSubnets = mode === 'same-subnet' ? 1 : 2;
  if (subnetCidrs.length !== expectedSubnets) {
    throw new Error(
      `${mode} mode places the pair in ${expectedSubnets} subnet(s), but ${subnetCidrs.length} were given. ` +
        (mode === 'cross-az'
          ? 'Give two subnets in two availability zones.'
          : 'Give exactly one subnet.'),
    );
  }
  if (mode === 'cross-az' && vip !== undefined) {
    throw new Error(
      `vip (${vip}) is only used in same-subnet mode: a private IP belongs to one subnet, so one ` +
        'availability zone, and cannot move to a node in another AZ; in cross-az mode the Elastic IP ' +
        "follows the active node's own primary private IP instead. Remove vip (-c vip), or use mode same-subnet.",
    );
  }
  if (
    !Number.isInteger(blockOffset) ||
    blockOffset < BLOCK_SIZE ||
    blockOffset % BLOCK_SIZE !== 0
  ) {
    throw new Error(
      `addressBlockOffset must be a multiple of 16 and at least 16 (the first addresses of a subnet ` +
        `belong to AWS); got ${blockOffset}.`,
    );
  }

  const subnets = subnetCidrs.map((text) => {
    if (Token.isUnresolved(text)) {
      throw new Error(
        "The pair's subnet CIDR must be known at synth time to place the nodes' addresses. For an " +
          'existing VPC, give each subnet its cidr in the existingVpc context (see README).',
      );
    }
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`'${text}' is not an IPv4 CIDR such as 10.0.0.0/24.`);
    if (blockOffset + BLOCK_SIZE > cidr.size - 1) {
      throw new Error(
        `Subnet ${text} is too small for the pair's reserved /28 at offset ${blockOffset}: ` +
          `use a subnet of /26 or larger, or a smaller addressBlockOffset.`,
      );
    }
    return { text, cidr, block: cidr.base + blockOffset };
  });

  const first = subnets[0];
  const second = subnets[1] ?? first;
  if (!first || !second) throw new Error('No subnet was given for the pair.');
  const primaryIp = first.block + PRIMARY_OFFSET;
  const secondaryIp = second.block + SECONDARY_OFFSET;
  const reservedBlocks = subnets.map((s) => `${formatIpv4(s.block)}/28`);

  if (mode === 'cross-az') {
    return {
      reservedBlocks,
      primaryIp: formatIpv4(primaryIp),
      secondaryIp: formatIpv4(secondaryIp),
      vip: undefined,
    };
  }

  let vipValue = first.block + VIP_OFFSET;
  if (vip !== undefined) {
    const parsed = parseIpv4(vip);
    if (parsed === undefined)
      throw new Error(`vip '${vip}' is not an IPv4 address such as 10.0.0.30.`);
    if (!cidrContains(first.cidr, parsed)) {
      throw new Error(
        `vip ${vip} is not in the pair's subnet ${first.text}: the VIP is a secondary private IP of ` +
          'that subnet. Choose an address inside it.',
      );
    }
    if (isAwsReserved(first.cidr, parsed)) {
      throw new Error(
        `vip ${vip} is one of the addresses AWS reserves in ${first.text}; choose another.`,
      );
    }
    const block = { base: first.block, prefix: 28, size: BLOCK_SIZE };
    if (!cidrContains(block, parsed)) {
      const blockText = `${formatIpv4(first.block)}/28`;
      throw new Error(
        `vip ${vip} must lie in the pair's reserved block ${blockText} ` +
          `(${formatIpv4(first.block)}-${formatIpv4(first.block + BLOCK_SIZE - 1)}), which EC2 never ` +
          'assigns on its own, so no other interface can take the VIP while it is unassigned. Choose an ' +
          'address in that block, or move the block with addressBlockOffset.',
      );
    }
    if (parsed === primaryIp || parsed === secondaryIp) {
      throw new Error(
        `vip ${vip} collides with a node's primary private IP (${formatIpv4(primaryIp)}, ` +
          `${formatIpv4(secondaryIp)}); choose another address in ${reservedBlocks[0]}.`,
      );
    }
    vipValue = parsed;
  }
  return {
    reservedBlocks,
    primaryIp: formatIpv4(primaryIp),
    secondaryIp: formatIpv4(secondaryIp),
    vip: formatIpv4(vipValue),
  };
}
