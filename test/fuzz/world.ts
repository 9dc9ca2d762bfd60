import { THIS_NODE } from '../agent/harness.js';
import { instanceMetadata, type Metadata, type StubNode } from '../support/imds-stub.js';
import type { FuzzCase, WorldSpec } from './cases.js';
import type { PairModel } from './ec2-fake.js';

/** The pair every fuzz case runs against: this node, its peer, one EIP, one VIP. */
export const ALLOCATION_ID = 'eipalloc-0f0e0d0c0b0a09081';
export const PUBLIC_IP = '203.0.113.7';
export const VIP = '10.0.0.50';
export const ROLE = 'pair-node-role';
export const EXPIRED_KEY = 'ASIAEXPIREDFUZZ00001';

/** The agent unit tests' node, with an instance profile. */
export const HERE: StubNode = { ...THIS_NODE, role: ROLE };

const PEER = {
  'same-subnet': {
    eni: 'eni-0bbbbbbbbbbbbbbb2',
    instanceId: 'i-0bbbbbbbbbbbbbbb2',
    primaryIp: '10.0.0.12',
  },
  'cross-az': {
    eni: 'eni-0bbbbbbbbbbbbbbb2',
    instanceId: 'i-0bbbbbbbbbbbbbbb2',
    primaryIp: '10.0.1.12',
  },
} as const;

export function buildModel(world: WorldSpec): PairModel {
  const here = {
    eni: HERE.networkInterfaceId,
    instanceId: HERE.instanceId,
    primaryIp: HERE.primaryPrivateIp,
  };
  const peer = PEER[world.mode];
  const ips = new Map<string, string>([
    [here.primaryIp, here.eni],
    [peer.primaryIp, peer.eni],
  ]);
  const same = world.mode === 'same-subnet';
  if (same && world.vip !== 'none') ips.set(VIP, world.vip === 'here' ? here.eni : peer.eni);
  const target = (node: typeof here | typeof peer, side: 'here' | 'peer') => ({
    eni: node.eni,
    ip: same && world.vip === side ? VIP : node.primaryIp,
  });
  return {
    allocationId: ALLOCATION_ID,
    publicIp: PUBLIC_IP,
    vpcId: HERE.vpcId,
    subnetId: HERE.subnetId,
    availabilityZone: HERE.availabilityZone,
    here,
    peer,
    ips,
    association:
      world.eip === 'none'
        ? null
        : world.eip === 'here'
          ? target(here, 'here')
          : target(peer, 'peer'),
  };
}

/** This node's metadata; local-ipv4s follows the model, and the credentials may be expired. */
export function metadataFor(c: FuzzCase, model: PairModel): Metadata {
  const base = instanceMetadata(HERE, () =>
    [...model.ips.entries()].filter(([, eni]) => eni === model.here.eni).map(([ip]) => ip),
  );
  if (!c.expiredCredentials) return base;
  const expired = JSON.stringify({
    Code: 'Success',
    Type: 'AWS-HMAC',
    AccessKeyId: EXPIRED_KEY,
    SecretAccessKey: 'stub-secret-not-real',
    Token: 'stub-session-token-not-real',
    Expiration: '2020-01-01T00:00:00Z',
    LastUpdated: '2019-12-31T18:00:00Z',
  });
  return (path) => (path === `iam/security-credentials/${ROLE}` ? expired : base(path));
}

/** Is the pair already where a takeover would put it (the world's mode is the config's)? */
export function alreadyHere(world: WorldSpec): boolean {
  return world.eip === 'here' && (world.mode === 'cross-az' || world.vip === 'here');
}

/** Does this node hold any part of an address (what a non-MASTER must not)? */
export function holdsAnyPart(world: WorldSpec): boolean {
  return world.eip === 'here' || (world.mode === 'same-subnet' && world.vip === 'here');
}
