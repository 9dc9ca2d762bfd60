// The IAM policy the CDK app synthesizes, enforced by the emulator's IAM layer: it lets the agent
// do everything it does for its own pair, and refuses moving another allocation or touching an ENI
// or instance outside the pair.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AllocateAddressCommand,
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ec2Failure, useEmulator } from '../emulator/helpers.js';
import type { PolicyDocument } from '../support/emulator.js';
import type { ImdsStub } from '../support/imds-stub.js';
import { createWorld, WORLD_AMI, type World, type WorldMode } from '../support/world.js';
import {
  type AgentNode,
  agentNode,
  EMULATOR_ACCOUNT,
  INSTANCE_PROFILE_CREDENTIALS,
  REGION,
  runAgent,
  synthesizedPolicy,
} from './support.js';

const env = useEmulator();
/** The pair node's credentials when given in the environment (an IAM user's access key). */
const NODE_KEY = { accessKeyId: 'AKIAPAIRNODETESTONLY', secretAccessKey: 'pair-node-secret' };

let dir: string;
const stubs: ImdsStub[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-iam-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

interface Setup {
  readonly world: World;
  readonly policy: PolicyDocument;
  readonly otherAllocation: string;
  readonly third: { readonly instanceId: string; readonly networkInterfaceId: string };
  readonly primary: AgentNode;
  readonly secondary: AgentNode;
}

/** The world, a second EIP and a third instance outside the pair, both principals registered. */
async function setup(
  mode: WorldMode,
  opts: {
    allocationId?: 'other';
    extraStatements?: (world: World) => Record<string, unknown>[];
  } = {},
): Promise<Setup> {
  const world = await createWorld(env.ec2, { mode });
  const otherAllocation =
    (await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }))).AllocationId ?? '';
  const run = await env.ec2.send(
    new RunInstancesCommand({
      ImageId: WORLD_AMI,
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: world.primary.subnetId,
      PrivateIpAddress: '10.0.0.13',
    }),
  );
  const instance = run.Instances?.[0];
  const third = {
    instanceId: instance?.InstanceId ?? '',
    networkInterfaceId: instance?.NetworkInterfaces?.[0]?.NetworkInterfaceId ?? '',
  };
  const synthesized = synthesizedPolicy(mode, world);
  const policy = {
    ...synthesized,
    Statement: [...synthesized.Statement, ...(opts.extraStatements?.(world) ?? [])],
  };
  await env.emulator.registerPrincipals([
    { ...NODE_KEY, name: 'pair-node', policy },
    { ...INSTANCE_PROFILE_CREDENTIALS, name: 'pair-node-role', policy },
  ]);
  const config = opts.allocationId === 'other' ? { allocationId: otherAllocation } : {};
  const primary = await agentNode(env.ec2, world, world.primary, dir, config);
  const secondary = await agentNode(env.ec2, world, world.secondary, dir, config);
  stubs.push(primary.imds, secondary.imds);
  await env.emulator.resetLog();
  return { world, policy, otherAllocation, third, primary, secondary };
}

const agent = (
  node: AgentNode,
  args: string[],
  credentials: typeof NODE_KEY | undefined = NODE_KEY,
) => runAgent(env.emulator.endpoint, node, args, credentials);

function nodeClient(): EC2Client {
  return new EC2Client({
    endpoint: env.emulator.endpoint,
    region: REGION,
    credentials: NODE_KEY,
    maxAttempts: 1,
  });
}

async function eipTarget(allocationId: string): Promise<string | undefined> {
  const out = await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] }));
  return out.Addresses?.[0]?.NetworkInterfaceId;
}

async function refusals(): Promise<string[]> {
  return (await env.emulator.actions())
    .filter((a) => a.errorCode === 'UnauthorizedOperation')
    .map((a) => a.action);
}

async function successfulMutations(): Promise<string[]> {
  return (await env.emulator.actions())
    .filter((a) => a.mutating && !a.dryRun && a.status === 200)
    .map((a) => a.action);
}

describe.each(['same-subnet', 'cross-az'] as const)('the synthesized policy (%s)', (mode) => {
  it('is the CDK app’s document, resolved to the world’s ids', async () => {
    const { world, policy } = await setup(mode);
    const text = JSON.stringify(policy);
    expect(text).not.toMatch(/Fn::|"Ref"/);
    const arn = (kind: string, id: string) =>
      `arn:aws:ec2:${REGION}:${EMULATOR_ACCOUNT}:${kind}/${id}`;
    const associate = policy.Statement.find((s) => s.Action === 'ec2:AssociateAddress');
    expect(associate?.Resource).toEqual(
      expect.arrayContaining([
        arn('elastic-ip', world.allocationId),
        arn('network-interface', world.primary.networkInterfaceId),
        arn('network-interface', world.secondary.networkInterfaceId),
        arn('instance', world.primary.instanceId),
        arn('instance', world.secondary.instanceId),
      ]),
    );
  });

  it('permits the agent’s takeover, failover, failback, status and check for its own pair', async () => {
    const { world, primary, secondary } = await setup(mode);
    const first = await agent(primary, ['takeover']);
    expect(first.code, first.stderr).toBe(0);
    expect(await eipTarget(world.allocationId)).toBe(world.primary.networkInterfaceId);
    const failover = await agent(secondary, ['takeover']);
    expect(failover.code, failover.stderr).toBe(0);
    expect(await eipTarget(world.allocationId)).toBe(world.secondary.networkInterfaceId);
    const failback = await agent(primary, ['takeover']);
    expect(failback.code, failback.stderr).toBe(0);
    expect(await eipTarget(world.allocationId)).toBe(world.primary.networkInterfaceId);
    expect((await agent(secondary, ['release'])).code).toBe(0);

    const status = await agent(primary, ['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ consistent: true });
    const check = await agent(secondary, ['check']);
    expect(check.code, check.stdout).toBe(0);
    expect(check.stdout).toMatch(/^ok\s+permission AssociateAddress/m);

    expect(await refusals()).toEqual([]);
    const log = await env.emulator.actions();
    expect(log.filter((a) => a.dryRun).map((a) => [a.action, a.errorCode])).toEqual([
      ['AssociateAddress', 'DryRunOperation'],
    ]);
  });

  it('permits the same with the instance profile’s credentials (session token checked)', async () => {
    const { world, primary } = await setup(mode);
    const run = await agent(primary, ['takeover'], undefined);
    expect(run.code, run.stderr).toBe(0);
    expect(await eipTarget(world.allocationId)).toBe(world.primary.networkInterfaceId);
  });

  it('refuses associating another allocation with the pair’s ENI (also as DryRun)', async () => {
    const { world, otherAllocation } = await setup(mode);
    const ec2 = nodeClient();
    const send = (dryRun: boolean) =>
      ec2.send(
        new AssociateAddressCommand({
          AllocationId: otherAllocation,
          NetworkInterfaceId: world.primary.networkInterfaceId,
          AllowReassociation: true,
          DryRun: dryRun,
        }),
      );
    expect(await ec2Failure(send(false))).toMatchObject({
      name: 'UnauthorizedOperation',
      status: 403,
    });
    expect((await ec2Failure(send(true))).name).toBe('UnauthorizedOperation');
    expect(await eipTarget(otherAllocation)).toBeUndefined();
  });

  it('refuses associating the pair’s EIP with an ENI or an instance outside the pair', async () => {
    const { world, third } = await setup(mode);
    const ec2 = nodeClient();
    const toEni = await ec2Failure(
      ec2.send(
        new AssociateAddressCommand({
          AllocationId: world.allocationId,
          NetworkInterfaceId: third.networkInterfaceId,
          AllowReassociation: true,
        }),
      ),
    );
    expect(toEni.name).toBe('UnauthorizedOperation');
    expect(toEni.message).toContain(`network-interface/${third.networkInterfaceId}`);
    const toInstance = await ec2Failure(
      ec2.send(
        new AssociateAddressCommand({
          AllocationId: world.allocationId,
          InstanceId: third.instanceId,
          AllowReassociation: true,
        }),
      ),
    );
    expect(toInstance.name).toBe('UnauthorizedOperation');
    expect(toInstance.message).toContain(`instance/${third.instanceId}`);
    expect(await eipTarget(world.allocationId)).toBeUndefined();
  });

  it('refuses assigning private IPs to an ENI outside the pair', async () => {
    const { third } = await setup(mode);
    const ec2 = nodeClient();
    for (const request of [
      { PrivateIpAddresses: ['10.0.0.50'], AllowReassignment: true },
      { SecondaryPrivateIpAddressCount: 1 },
    ]) {
      const refused = await ec2Failure(
        ec2.send(
          new AssignPrivateIpAddressesCommand({
            NetworkInterfaceId: third.networkInterfaceId,
            ...request,
          }),
        ),
      );
      expect(refused.name).toBe('UnauthorizedOperation');
    }
    expect(await successfulMutations()).toEqual([]);
  });

  it('an agent configured with a foreign allocation exits 1 with the UnauthorizedOperation line', async () => {
    const { otherAllocation, primary } = await setup(mode, { allocationId: 'other' });
    const run = await agent(primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /AssociateAddress was refused \(UnauthorizedOperation\): the instance profile does not allow it/,
    );
    expect(await eipTarget(otherAllocation)).toBeUndefined();
    // Same-subnet: moving the VIP onto its own ENI is the pair's right and comes first; the
    // foreign address is never associated. Cross-AZ: nothing changes at all.
    expect(await successfulMutations()).toEqual(
      mode === 'same-subnet' ? ['AssignPrivateIpAddresses'] : [],
    );
    const check = await agent(primary, ['check']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/permission AssociateAddress/);
  });

  it('an explicit Deny on the pair’s EIP stops the agent', async () => {
    const { world, primary } = await setup(mode, {
      extraStatements: (w) => [
        {
          Effect: 'Deny',
          Action: 'ec2:AssociateAddress',
          Resource: `arn:aws:ec2:${REGION}:${EMULATOR_ACCOUNT}:elastic-ip/${w.allocationId}`,
        },
      ],
    });
    const run = await agent(primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/AssociateAddress was refused \(UnauthorizedOperation\)/);
    expect(await eipTarget(world.allocationId)).toBeUndefined();
  });
});

describe('cross-az: no AssignPrivateIpAddresses', () => {
  it('is absent from the policy and refused even on the pair’s own ENI', async () => {
    const { world, policy } = await setup('cross-az');
    expect(JSON.stringify(policy)).not.toContain('AssignPrivateIpAddresses');
    const refused = await ec2Failure(
      nodeClient().send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: world.primary.networkInterfaceId,
          SecondaryPrivateIpAddressCount: 1,
        }),
      ),
    );
    expect(refused).toMatchObject({ name: 'UnauthorizedOperation', status: 403 });
  });
});

describe('same-subnet: AssignPrivateIpAddresses', () => {
  it('is permitted on the pair’s own ENIs (the VIP moves between them)', async () => {
    const { world } = await setup('same-subnet');
    await expect(
      nodeClient().send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: world.secondary.networkInterfaceId,
          PrivateIpAddresses: ['10.0.0.50'],
          AllowReassignment: true,
        }),
      ),
    ).resolves.toBeDefined();
  });
});
