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
