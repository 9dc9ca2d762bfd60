import {
  AllocateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeNetworkInterfacesCommand,
  type EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { StubNode } from './imds-stub.js';

/** A Linux image from moto's bundled catalogue (ubuntu xenial, x86_64). */
export const WORLD_AMI = 'ami-785db401';

export type WorldMode = 'same-subnet' | 'cross-az';

export interface WorldNode {
  readonly instanceId: string;
  /** The instance's primary ENI (device index 0). */
  readonly networkInterfaceId: string;
  readonly privateIp: string;
  readonly macAddress: string;
  readonly subnetId: string;
  readonly subnetCidr: string;
  readonly availabilityZone: string;
}

export interface World {
  readonly mode: WorldMode;
  readonly vpcId: string;
  readonly securityGroupId: string;
  readonly allocationId: string;
  readonly publicIp: string;
  /** The floating secondary private IP (same-subnet only); not assigned until the first election. */
  readonly vip: string | undefined;
  readonly primary: WorldNode;
  readonly secondary: WorldNode;
}

interface NodePlan {
  readonly cidr: string;
  readonly availabilityZone: string;
  readonly ip: string;
}

const PLANS: Record<WorldMode, { readonly primary: NodePlan; readonly secondary: NodePlan }> = {
  'same-subnet': {
    primary: { cidr: '10.0.0.0/24', availabilityZone: 'eu-central-1a', ip: '10.0.0.11' },
    secondary: { cidr: '10.0.0.0/24', availabilityZone: 'eu-central-1a', ip: '10.0.0.12' },
  },
  'cross-az': {
    primary: { cidr: '10.0.0.0/24', availabilityZone: 'eu-central-1a', ip: '10.0.0.11' },
    secondary: { cidr: '10.0.1.0/24', availabilityZone: 'eu-central-1b', ip: '10.0.1.12' },
  },
};

/**
 * Builds in the emulator the shape the CDK app deploys: a VPC, one subnet per AZ in use, a
 * security group that admits VRRP (IP protocol 112) from its own members, two instances each with
 * its primary ENI at device index 0, and an Elastic IP allocated but not associated.
 */
export async function createWorld(ec2: EC2Client, opts: { mode: WorldMode }): Promise<World> {
  const plan = PLANS[opts.mode];
  const vpcId = required(
    (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId,
    'VpcId',
  );

  const subnets = new Map<string, string>();
  for (const node of [plan.primary, plan.secondary]) {
    if (subnets.has(node.cidr)) continue;
    const out = await ec2.send(
      new CreateSubnetCommand({
        VpcId: vpcId,
        CidrBlock: node.cidr,
        AvailabilityZone: node.availabilityZone,
      }),
    );
    subnets.set(node.cidr, required(out.Subnet?.SubnetId, 'SubnetId'));
  }

  const securityGroupId = required(
    (
      await ec2.send(
        new CreateSecurityGroupCommand({
          GroupName: 'keepalived-pair',
          Description: 'VRRP between the pair',
          VpcId: vpcId,
        }),
      )
    ).GroupId,
    'GroupId',
  );
  await ec2.send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: securityGroupId,
      IpPermissions: [{ IpProtocol: '112', UserIdGroupPairs: [{ GroupId: securityGroupId }] }],
    }),
  );

  const launch = async (name: string, node: NodePlan): Promise<WorldNode> => {
    const subnetId = required(subnets.get(node.cidr), 'subnet');
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: WORLD_AMI,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        NetworkInterfaces: [
          {
            DeviceIndex: 0,
            SubnetId: subnetId,
            PrivateIpAddress: node.ip,
            Groups: [securityGroupId],
          },
        ],
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: name }] }],
      }),
    );
    const instanceId = required(out.Instances?.[0]?.InstanceId, 'InstanceId');
    const enis = await ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }],
      }),
    );
    const eni = enis.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0);
    return {
      instanceId,
      networkInterfaceId: required(eni?.NetworkInterfaceId, 'NetworkInterfaceId'),
      privateIp: required(eni?.PrivateIpAddress, 'PrivateIpAddress'),
      macAddress: required(eni?.MacAddress, 'MacAddress'),
      subnetId,
      subnetCidr: node.cidr,
      availabilityZone: node.availabilityZone,
    };
  };

  const primary = await launch('lb-primary', plan.primary);
  const secondary = await launch('lb-secondary', plan.secondary);
  const eip = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));

  return {
    mode: opts.mode,
    vpcId,
    securityGroupId,
    allocationId: required(eip.AllocationId, 'AllocationId'),
    publicIp: required(eip.PublicIp, 'PublicIp'),
    vip: opts.mode === 'same-subnet' ? '10.0.0.50' : undefined,
    primary,
    secondary,
  };
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`EC2 emulator answer lacks ${what}`);
  return value;
}

/** One pair of a fleet: its own subnet, two instances, an Elastic IP and a VIP (same-subnet). */
export interface FleetPair {
  readonly index: number;
  readonly allocationId: string;
  readonly publicIp: string;
  readonly vip: string;
  readonly primary: WorldNode;
  readonly secondary: WorldNode;
}

export interface Fleet {
  readonly vpcId: string;
  readonly securityGroupId: string;
  readonly pairs: readonly FleetPair[];
}

/**
 * Many same-subnet pairs in one VPC, as an account running a pair per service would have them:
 * pair i gets subnet 10.0.i.0/24 with its primary at .11, its secondary at .12 and its VIP at .50,
 * and an Elastic IP allocated but not associated. All in one AZ (a same-subnet pair's two nodes
 * share it). Calls are sequential: this builds the stage, it is not what is measured.
 */
export async function createFleet(ec2: EC2Client, opts: { pairs: number }): Promise<Fleet> {
  if (!Number.isInteger(opts.pairs) || opts.pairs < 1 || opts.pairs > 250) {
    throw new Error(`a fleet has 1 to 250 pairs (one /24 each in 10.0.0.0/16), not ${opts.pairs}`);
  }
  const availabilityZone = 'eu-central-1a';
  const vpcId = required(
    (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId,
    'VpcId',
  );
  const securityGroupId = required(
    (
      await ec2.send(
        new CreateSecurityGroupCommand({
          GroupName: 'keepalived-fleet',
          Description: 'VRRP within each pair',
          VpcId: vpcId,
        }),
      )
    ).GroupId,
    'GroupId',
  );
  const launch = async (subnetId: string, ip: string, name: string): Promise<string> => {
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: WORLD_AMI,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        NetworkInterfaces: [
          { DeviceIndex: 0, SubnetId: subnetId, PrivateIpAddress: ip, Groups: [securityGroupId] },
        ],
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: name }] }],
      }),
    );
    return required(out.Instances?.[0]?.InstanceId, 'InstanceId');
  };

  const planned: Array<{ index: number; subnetId: string; cidr: string; ids: [string, string] }> =
    [];
  for (let index = 0; index < opts.pairs; index++) {
    const cidr = `10.0.${index}.0/24`;
    const subnetId = required(
      (
        await ec2.send(
          new CreateSubnetCommand({
            VpcId: vpcId,
            CidrBlock: cidr,
            AvailabilityZone: availabilityZone,
          }),
        )
      ).Subnet?.SubnetId,
      'SubnetId',
    );
    planned.push({
      index,
      subnetId,
      cidr,
      ids: [
        await launch(subnetId, `10.0.${index}.11`, `lb-${index}-primary`),
        await launch(subnetId, `10.0.${index}.12`, `lb-${index}-secondary`),
      ],
    });
  }

  // One look at every ENI instead of one per instance.
  const enis =
    (
      await ec2.send(
        new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }] }),
      )
    ).NetworkInterfaces ?? [];
  const node = (instanceId: string, subnetId: string, cidr: string): WorldNode => {
    const eni = enis.find(
      (n) => n.Attachment?.InstanceId === instanceId && n.Attachment?.DeviceIndex === 0,
    );
    return {
      instanceId,
      networkInterfaceId: required(eni?.NetworkInterfaceId, 'NetworkInterfaceId'),
      privateIp: required(eni?.PrivateIpAddress, 'PrivateIpAddress'),
      macAddress: required(eni?.MacAddress, 'MacAddress'),
      subnetId,
      subnetCidr: cidr,
      availabilityZone,
    };
  };

  const pairs: FleetPair[] = [];
  for (const { index, subnetId, cidr, ids } of planned) {
    const eip = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
    pairs.push({
      index,
      allocationId: required(eip.AllocationId, 'AllocationId'),
      publicIp: required(eip.PublicIp, 'PublicIp'),
      vip: `10.0.${index}.50`,
      primary: node(ids[0], subnetId, cidr),
      secondary: node(ids[1], subnetId, cidr),
    });
  }
  return { vpcId, securityGroupId, pairs };
}

/** What IMDS tells `node` of this world about itself: an IMDSv2 stub's identity. */
export function stubNodeOf(
  world: World,
  node: WorldNode,
  options: { readonly region?: string; readonly role?: string } = {},
): StubNode {
  return {
    instanceId: node.instanceId,
    region: options.region ?? 'eu-central-1',
    availabilityZone: node.availabilityZone,
    macAddress: node.macAddress,
    networkInterfaceId: node.networkInterfaceId,
    vpcId: world.vpcId,
    subnetId: node.subnetId,
    subnetCidr: node.subnetCidr,
    primaryPrivateIp: node.privateIp,
    ...(options.role !== undefined ? { role: options.role } : {}),
  };
}

/** An ENI's private IPs as IMDS lists them (`local-ipv4s`: the primary first), read from EC2. */
export async function eniLocalIpv4s(ec2: EC2Client, eni: string): Promise<string[]> {
  const out = await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni] }));
  const ips = out.NetworkInterfaces?.[0]?.PrivateIpAddresses ?? [];
  return [...ips.filter((p) => p.Primary), ...ips.filter((p) => !p.Primary)].flatMap((p) =>
    p.PrivateIpAddress ? [p.PrivateIpAddress] : [],
  );
}
