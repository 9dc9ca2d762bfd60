// EC2's documented behaviour on the calls the pattern makes, which the emulator must reproduce
// (moto 5.2.1 departs from each of these without the project's corrections).
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  AuthorizeSecurityGroupEgressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { beforeEach, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../support/world.js';
import { ec2Failure, useEmulator } from './helpers.js';

const env = useEmulator();
let world: World;
let vip: string;

beforeEach(async () => {
  world = await createWorld(env.ec2, { mode: 'same-subnet' });
  vip = world.vip ?? '';
});

const assignVip = (networkInterfaceId: string, allowReassignment?: boolean) =>
  env.ec2.send(
    new AssignPrivateIpAddressesCommand({
      NetworkInterfaceId: networkInterfaceId,
      PrivateIpAddresses: [vip],
      ...(allowReassignment === undefined ? {} : { AllowReassignment: allowReassignment }),
    }),
  );

const associate = (
  networkInterfaceId: string,
  extra: { PrivateIpAddress?: string; AllowReassociation?: boolean; DryRun?: boolean } = {},
) =>
  env.ec2.send(
    new AssociateAddressCommand({
      AllocationId: world.allocationId,
      NetworkInterfaceId: networkInterfaceId,
      ...extra,
    }),
  );

const address = async () => {
  const out = await env.ec2.send(
    new DescribeAddressesCommand({ AllocationIds: [world.allocationId] }),
  );
  return out.Addresses?.[0];
};

const eniIps = async (networkInterfaceId: string) => {
  const out = await env.ec2.send(
    new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [networkInterfaceId] }),
  );
  return (out.NetworkInterfaces?.[0]?.PrivateIpAddresses ?? []).map((p) => p.PrivateIpAddress);
};

describe('AssociateAddress', () => {
  it('with NetworkInterfaceId and PrivateIpAddress associates that private IP', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    const out = await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    expect(await address()).toMatchObject({
      AssociationId: out.AssociationId,
      NetworkInterfaceId: world.primary.networkInterfaceId,
      PrivateIpAddress: vip,
      InstanceId: world.primary.instanceId,
      NetworkInterfaceOwnerId: expect.stringMatching(/^\d{12}$/),
    });
  });

  it('without PrivateIpAddress associates the primary private IP', async () => {
    await associate(world.primary.networkInterfaceId);

    expect(await address()).toMatchObject({
      NetworkInterfaceId: world.primary.networkInterfaceId,
      PrivateIpAddress: world.primary.privateIp,
      InstanceId: world.primary.instanceId,
    });
  });

  it('with InstanceId associates the primary private IP of its primary network interface', async () => {
    await env.ec2.send(
      new AssociateAddressCommand({
        AllocationId: world.allocationId,
        InstanceId: world.secondary.instanceId,
      }),
    );

    expect(await address()).toMatchObject({
      NetworkInterfaceId: world.secondary.networkInterfaceId,
      PrivateIpAddress: world.secondary.privateIp,
      InstanceId: world.secondary.instanceId,
    });
  });

  it('refuses a private IP the network interface does not hold (InvalidParameterValue)', async () => {
    const failure = await ec2Failure(
      associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip }),
    );

    expect(failure).toMatchObject({ name: 'InvalidParameterValue', status: 400 });
    expect((await address())?.AssociationId).toBeUndefined();
  });

  it.each([
    ['without AllowReassociation', {}],
    ['with AllowReassociation=false', { AllowReassociation: false }],
  ])('%s refuses an address associated elsewhere (Resource.AlreadyAssociated)', async (_, flag) => {
    await associate(world.primary.networkInterfaceId);

    const failure = await ec2Failure(associate(world.secondary.networkInterfaceId, flag));

    expect(failure).toMatchObject({ name: 'Resource.AlreadyAssociated', status: 400 });
    expect(await address()).toMatchObject({ NetworkInterfaceId: world.primary.networkInterfaceId });
  });

  it('with AllowReassociation=true moves an address associated elsewhere', async () => {
    await associate(world.primary.networkInterfaceId);

    await associate(world.secondary.networkInterfaceId, { AllowReassociation: true });

    expect(await address()).toMatchObject({
      NetworkInterfaceId: world.secondary.networkInterfaceId,
      PrivateIpAddress: world.secondary.privateIp,
      InstanceId: world.secondary.instanceId,
    });
  });

  it('is idempotent: associating again with the same interface and private IP succeeds without the flag', async () => {
    await associate(world.primary.networkInterfaceId);

    await associate(world.primary.networkInterfaceId);

    expect(await address()).toMatchObject({ NetworkInterfaceId: world.primary.networkInterfaceId });
  });

  it('under the policy allowReassociationByDefault, a move without the flag succeeds', async () => {
    await env.emulator.setPolicy({ allowReassociationByDefault: true });
    await associate(world.primary.networkInterfaceId);

    await associate(world.secondary.networkInterfaceId);

    expect(await address()).toMatchObject({
      NetworkInterfaceId: world.secondary.networkInterfaceId,
    });
  });

  it('with DryRun answers DryRunOperation (HTTP 412) and changes nothing', async () => {
    const failure = await ec2Failure(associate(world.primary.networkInterfaceId, { DryRun: true }));

    expect(failure).toMatchObject({ name: 'DryRunOperation', status: 412 });
    expect((await address())?.AssociationId).toBeUndefined();
  });
});

describe('AssignPrivateIpAddresses', () => {
  it('without AllowReassignment refuses an address another interface holds (InvalidIPAddress.InUse)', async () => {
    await assignVip(world.primary.networkInterfaceId);

    const failure = await ec2Failure(assignVip(world.secondary.networkInterfaceId));

    expect(failure).toMatchObject({ name: 'InvalidIPAddress.InUse', status: 400 });
    expect(await eniIps(world.primary.networkInterfaceId)).toContain(vip);
    expect(await eniIps(world.secondary.networkInterfaceId)).not.toContain(vip);
  });

  it('with AllowReassignment=false refuses an address another interface holds', async () => {
    await assignVip(world.primary.networkInterfaceId);

    const failure = await ec2Failure(assignVip(world.secondary.networkInterfaceId, false));

    expect(failure.name).toBe('InvalidIPAddress.InUse');
  });

  it('with AllowReassignment=true moves the address: it leaves the other interface', async () => {
    await assignVip(world.primary.networkInterfaceId, true);

    await assignVip(world.secondary.networkInterfaceId, true);

    expect(await eniIps(world.secondary.networkInterfaceId)).toEqual([
      world.secondary.privateIp,
      vip,
    ]);
    expect(await eniIps(world.primary.networkInterfaceId)).toEqual([world.primary.privateIp]);
  });

  it('moves the Elastic IP associated with the address along with it', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    const { AssociationId } = await associate(world.primary.networkInterfaceId, {
      PrivateIpAddress: vip,
    });

    await assignVip(world.secondary.networkInterfaceId, true);

    expect(await address()).toMatchObject({
      AssociationId,
      NetworkInterfaceId: world.secondary.networkInterfaceId,
      InstanceId: world.secondary.instanceId,
      PrivateIpAddress: vip,
    });
  });

  it('applies concurrent reassignments one at a time: the address ends on exactly one interface', async () => {
    await assignVip(world.primary.networkInterfaceId, true);

    await Promise.all([
      assignVip(world.secondary.networkInterfaceId, true),
      assignVip(world.primary.networkInterfaceId, true),
      assignVip(world.secondary.networkInterfaceId, true),
    ]);

    const holders = await env.ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'addresses.private-ip-address', Values: [vip] }],
      }),
    );
    expect(holders.NetworkInterfaces).toHaveLength(1);
  });

  it('lists in AssignedPrivateIpAddresses the addresses this call assigned', async () => {
    const out = await assignVip(world.primary.networkInterfaceId, true);

    expect(out.AssignedPrivateIpAddresses).toEqual([{ PrivateIpAddress: vip }]);
  });

  it("refuses an address outside the interface's subnet (InvalidParameterValue)", async () => {
    const failure = await ec2Failure(
      env.ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: world.primary.networkInterfaceId,
          PrivateIpAddresses: ['10.0.9.50'],
          AllowReassignment: true,
        }),
      ),
    );

    expect(failure.name).toBe('InvalidParameterValue');
  });

  it("never takes another interface's primary address, even with AllowReassignment", async () => {
    const failure = await ec2Failure(
      env.ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: world.secondary.networkInterfaceId,
          PrivateIpAddresses: [world.primary.privateIp],
          AllowReassignment: true,
        }),
      ),
    );

    expect(failure.name).toBe('InvalidIPAddress.InUse');
    expect(await eniIps(world.primary.networkInterfaceId)).toEqual([world.primary.privateIp]);
  });
});

describe('UnassignPrivateIpAddresses', () => {
  it('removes the secondary address and disassociates the Elastic IP associated with it', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    await env.ec2.send(
      new UnassignPrivateIpAddressesCommand({
        NetworkInterfaceId: world.primary.networkInterfaceId,
        PrivateIpAddresses: [vip],
      }),
    );

    expect(await eniIps(world.primary.networkInterfaceId)).toEqual([world.primary.privateIp]);
    const eip = await address();
    expect(eip?.AssociationId).toBeUndefined();
    expect(eip?.NetworkInterfaceId).toBeUndefined();
  });

  it('refuses an address not assigned to the interface (InvalidParameterValue)', async () => {
    const failure = await ec2Failure(
      env.ec2.send(
        new UnassignPrivateIpAddressesCommand({
          NetworkInterfaceId: world.primary.networkInterfaceId,
          PrivateIpAddresses: [vip],
        }),
      ),
    );

    expect(failure.name).toBe('InvalidParameterValue');
  });
});

describe('DescribeAddresses', () => {
  it('reports an unassociated address without association fields', async () => {
    const eip = await address();

    expect(eip).toMatchObject({ AllocationId: world.allocationId, PublicIp: world.publicIp });
    expect(eip?.AssociationId).toBeUndefined();
    expect(eip?.InstanceId).toBeUndefined();
    expect(eip?.NetworkInterfaceId).toBeUndefined();
    expect(eip?.PrivateIpAddress).toBeUndefined();
  });

  it('by PublicIps reports the same association as by AllocationIds', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    const out = await env.ec2.send(new DescribeAddressesCommand({ PublicIps: [world.publicIp] }));

    expect(out.Addresses).toEqual([await address()]);
  });

  it('filters by private-ip-address on the associated private IP', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    const out = await env.ec2.send(
      new DescribeAddressesCommand({ Filters: [{ Name: 'private-ip-address', Values: [vip] }] }),
    );

    expect(out.Addresses?.map((a) => a.AllocationId)).toEqual([world.allocationId]);
  });

  it('refuses an unknown allocation id with InvalidAllocationID.NotFound naming it', async () => {
    const failure = await ec2Failure(
      env.ec2.send(new DescribeAddressesCommand({ AllocationIds: ['eipalloc-0123456789abcdef0'] })),
    );

    expect(failure).toMatchObject({ name: 'InvalidAllocationID.NotFound', status: 400 });
    expect(failure.message).toContain("'eipalloc-0123456789abcdef0'");
  });

  it('refuses AssociateAddress with an unknown allocation id with InvalidAllocationID.NotFound', async () => {
    const failure = await ec2Failure(
      env.ec2.send(
        new AssociateAddressCommand({
          AllocationId: 'eipalloc-0123456789abcdef0',
          NetworkInterfaceId: world.primary.networkInterfaceId,
        }),
      ),
    );

    expect(failure.name).toBe('InvalidAllocationID.NotFound');
  });
});

describe('DescribeNetworkInterfaces', () => {
  it.each(['addresses.private-ip-address', 'private-ip-address'])(
    'filter %s matches a secondary private IP',
    async (name) => {
      await assignVip(world.secondary.networkInterfaceId, true);

      const out = await env.ec2.send(
        new DescribeNetworkInterfacesCommand({ Filters: [{ Name: name, Values: [vip] }] }),
      );

      expect(out.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([
        world.secondary.networkInterfaceId,
      ]);
    },
  );

  it('filters by attachment.instance-id and vpc-id', async () => {
    const out = await env.ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [
          { Name: 'attachment.instance-id', Values: [world.primary.instanceId] },
          { Name: 'vpc-id', Values: [world.vpcId] },
        ],
      }),
    );

    expect(out.NetworkInterfaces?.map((n) => n.NetworkInterfaceId)).toEqual([
      world.primary.networkInterfaceId,
    ]);
  });

  it('reports Primary per private IP, the MAC address and the attachment', async () => {
    await assignVip(world.primary.networkInterfaceId, true);

    const out = await env.ec2.send(
      new DescribeNetworkInterfacesCommand({
        NetworkInterfaceIds: [world.primary.networkInterfaceId],
      }),
    );

    expect(out.NetworkInterfaces?.[0]).toMatchObject({
      MacAddress: world.primary.macAddress,
      Attachment: { DeviceIndex: 0, InstanceId: world.primary.instanceId },
      PrivateIpAddresses: [
        { PrivateIpAddress: world.primary.privateIp, Primary: true },
        { PrivateIpAddress: vip, Primary: false },
      ],
    });
  });

  it('shows the Elastic IP on the private IP it is associated with, not on the primary', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    const out = await env.ec2.send(
      new DescribeNetworkInterfacesCommand({
        NetworkInterfaceIds: [world.primary.networkInterfaceId],
      }),
    );

    const eni = out.NetworkInterfaces?.[0];
    expect(eni?.Association).toBeUndefined();
    const [primaryIp, vipEntry] = eni?.PrivateIpAddresses ?? [];
    expect(primaryIp?.Association).toBeUndefined();
    expect(vipEntry?.Association).toMatchObject({
      PublicIp: world.publicIp,
      AllocationId: world.allocationId,
    });
  });
});

describe('DescribeInstances', () => {
  it('reports the Elastic IP on the private IP it is associated with, and PublicIpAddress only for the primary', async () => {
    await assignVip(world.primary.networkInterfaceId, true);
    await associate(world.primary.networkInterfaceId, { PrivateIpAddress: vip });

    const out = await env.ec2.send(
      new DescribeInstancesCommand({ InstanceIds: [world.primary.instanceId] }),
    );

    const instance = out.Reservations?.[0]?.Instances?.[0];
    expect(instance?.PrivateIpAddress).toBe(world.primary.privateIp);
    expect(instance?.PublicIpAddress).toBeUndefined();
    const eni = instance?.NetworkInterfaces?.[0];
    expect(eni?.NetworkInterfaceId).toBe(world.primary.networkInterfaceId);
    expect(
      eni?.PrivateIpAddresses?.map((p) => [p.PrivateIpAddress, p.Association?.PublicIp]),
    ).toEqual([
      [world.primary.privateIp, undefined],
      [vip, world.publicIp],
    ]);
  });
});

describe('Security group rules for VRRP (IP protocol 112)', () => {
  it('AuthorizeSecurityGroupIngress and Egress accept protocol 112 from a source group, without ports', async () => {
    const { GroupId } = await env.ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: 'vrrp',
        Description: 'vrrp',
        VpcId: world.vpcId,
      }),
    );
    const permission = { IpProtocol: '112', UserIdGroupPairs: [{ GroupId }] };

    await env.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({ GroupId, IpPermissions: [permission] }),
    );
    await env.ec2.send(
      new AuthorizeSecurityGroupEgressCommand({ GroupId, IpPermissions: [permission] }),
    );

    const out = await env.ec2.send(
      new DescribeSecurityGroupsCommand({ GroupIds: [GroupId ?? ''] }),
    );
    const group = out.SecurityGroups?.[0];
    const vrrp = { IpProtocol: '112', UserIdGroupPairs: [expect.objectContaining({ GroupId })] };
    expect(group?.IpPermissions).toEqual([expect.objectContaining(vrrp)]);
    expect(group?.IpPermissionsEgress).toContainEqual(expect.objectContaining(vrrp));
    expect(group?.IpPermissions?.[0]?.FromPort).toBeUndefined();
  });
});
