// The pair's world as the CDK app shapes it, built in the emulator; and the launcher itself.
import { createServer } from 'node:net';
import {
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { startEmulator } from '../support/emulator.js';
import { createFleet, createWorld } from '../support/world.js';
import { useEmulator } from './helpers.js';

const env = useEmulator();

describe('createWorld', () => {
  it('same-subnet: one subnet in eu-central-1a, both nodes in it, the VIP assigned to neither', async () => {
    const world = await createWorld(env.ec2, { mode: 'same-subnet' });

    expect(world.vip).toBe('10.0.0.50');
    expect(world.primary).toMatchObject({
      privateIp: '10.0.0.11',
      subnetCidr: '10.0.0.0/24',
      availabilityZone: 'eu-central-1a',
    });
    expect(world.secondary).toMatchObject({
      privateIp: '10.0.0.12',
      subnetId: world.primary.subnetId,
    });
    const vipHolders = await env.ec2.send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'addresses.private-ip-address', Values: ['10.0.0.50'] }],
      }),
    );
    expect(vipHolders.NetworkInterfaces).toEqual([]);
  });

  it('cross-az: a subnet per AZ, the secondary in 10.0.1.0/24 of eu-central-1b, no VIP', async () => {
    const world = await createWorld(env.ec2, { mode: 'cross-az' });

    expect(world.vip).toBeUndefined();
    expect(world.secondary).toMatchObject({
      privateIp: '10.0.1.12',
      subnetCidr: '10.0.1.0/24',
      availabilityZone: 'eu-central-1b',
    });
    const subnets = await env.ec2.send(
      new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [world.vpcId] }] }),
    );
    expect(subnets.Subnets?.map((s) => [s.CidrBlock, s.AvailabilityZone]).sort()).toEqual([
      ['10.0.0.0/24', 'eu-central-1a'],
      ['10.0.1.0/24', 'eu-central-1b'],
    ]);
  });

  it('gives each node its primary ENI at device index 0, with distinct MAC addresses', async () => {
    const world = await createWorld(env.ec2, { mode: 'same-subnet' });

    for (const node of [world.primary, world.secondary]) {
      const out = await env.ec2.send(
        new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [node.networkInterfaceId] }),
      );
      expect(out.NetworkInterfaces?.[0]).toMatchObject({
        Attachment: { DeviceIndex: 0, InstanceId: node.instanceId },
        MacAddress: node.macAddress,
        Groups: [{ GroupId: world.securityGroupId }],
      });
    }
    expect(world.primary.macAddress).not.toBe(world.secondary.macAddress);
  });

  it('allocates the Elastic IP in the VPC domain, not associated', async () => {
    const world = await createWorld(env.ec2, { mode: 'same-subnet' });

    const out = await env.ec2.send(
      new DescribeAddressesCommand({ AllocationIds: [world.allocationId] }),
    );

    expect(out.Addresses).toEqual([
      expect.objectContaining({ Domain: 'vpc', PublicIp: world.publicIp }),
    ]);
    expect(out.Addresses?.[0]?.AssociationId).toBeUndefined();
  });

  it('admits VRRP (IP protocol 112) from the group itself', async () => {
    const world = await createWorld(env.ec2, { mode: 'same-subnet' });

    const out = await env.ec2.send(
      new DescribeSecurityGroupsCommand({ GroupIds: [world.securityGroupId] }),
    );

    expect(out.SecurityGroups?.[0]?.IpPermissions).toEqual([
      expect.objectContaining({
        IpProtocol: '112',
        UserIdGroupPairs: [expect.objectContaining({ GroupId: world.securityGroupId })],
      }),
    ]);
  });
});

describe('createFleet', () => {
  it('gives each pair its own /24, nodes at .11 and .12, a VIP at .50 and an unassociated EIP', async () => {
    const fleet = await createFleet(env.ec2, { pairs: 3 });

    expect(fleet.pairs.map((p) => [p.primary.privateIp, p.secondary.privateIp, p.vip])).toEqual([
      ['10.0.0.11', '10.0.0.12', '10.0.0.50'],
      ['10.0.1.11', '10.0.1.12', '10.0.1.50'],
      ['10.0.2.11', '10.0.2.12', '10.0.2.50'],
    ]);
    for (const pair of fleet.pairs) {
      expect(pair.secondary.subnetId).toBe(pair.primary.subnetId);
      expect(pair.secondary.networkInterfaceId).not.toBe(pair.primary.networkInterfaceId);
      expect(pair.primary.subnetCidr).toBe(`10.0.${pair.index}.0/24`);
    }
    expect(new Set(fleet.pairs.map((p) => p.primary.subnetId)).size).toBe(3);
    const addresses = await env.ec2.send(
      new DescribeAddressesCommand({ AllocationIds: fleet.pairs.map((p) => p.allocationId) }),
    );
    expect(addresses.Addresses?.map((a) => a.AssociationId ?? null)).toEqual([null, null, null]);
  });

  it('refuses a fleet larger than the VPC has /24s for', async () => {
    await expect(createFleet(env.ec2, { pairs: 251 })).rejects.toThrow(/1 to 250 pairs/);
  });
});

describe('startEmulator', () => {
  it('binds the address and port it is given, and serves EC2 there', async () => {
    const port = await freePort();
    const other = await startEmulator({ host: '127.0.0.2', port });
    const client = other.client({ maxAttempts: 1 });
    try {
      expect(other.endpoint).toBe(`http://127.0.0.2:${port}`);
      await client.send(new DescribeAddressesCommand({}));
      expect((await other.actions()).map((a) => a.action)).toEqual(['DescribeAddresses']);
    } finally {
      client.destroy();
      await other.stop();
    }
    expect(isAlive(other.pid)).toBe(false);
  });

  it("fails with the emulator's stderr when it cannot bind", async () => {
    // TEST-NET-3 is never a local address, so the bind fails at once and nothing is sent.
    await expect(startEmulator({ host: '203.0.113.1' })).rejects.toThrow(
      /did not start[\s\S]*--- stderr ---\n.+/,
    );
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.2', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
