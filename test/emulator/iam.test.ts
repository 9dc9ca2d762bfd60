// The emulator's opt-in IAM enforcement (IamEnforcer in ec2_emulator.py): identity-based policies
// evaluated per EC2's resource types, answered the way EC2 answers (UnauthorizedOperation, 403).
import {
  AllocateAddressCommand,
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { beforeEach, describe, expect, it } from 'vitest';
import { type IamPrincipal, type PolicyDocument, TEST_REGION } from '../support/emulator.js';
import { createWorld, type World } from '../support/world.js';
import { ec2Failure, useEmulator } from './helpers.js';

const env = useEmulator();
const ACCOUNT = '123456789012';
const KEY = { accessKeyId: 'AKIAIAMTESTPRINCIPAL', secretAccessKey: 'iam-test-secret' } as const;

let world: World;
let otherAllocation: string;
beforeEach(async () => {
  world = await createWorld(env.ec2, { mode: 'same-subnet' });
  otherAllocation =
    (await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }))).AllocationId ?? '';
});

const arn = (kind: string, id: string) => `arn:aws:ec2:${TEST_REGION}:${ACCOUNT}:${kind}/${id}`;

function principal(policy: PolicyDocument, extra: Partial<IamPrincipal> = {}): IamPrincipal {
  return { ...KEY, policy, ...extra };
}

function client(credentials: { accessKeyId: string; secretAccessKey: string } = KEY): EC2Client {
  return new EC2Client({
    endpoint: env.emulator.endpoint,
    region: TEST_REGION,
    credentials,
    maxAttempts: 1,
  });
}

const associate = (c: EC2Client, allocationId: string, eni: string, dryRun = false) =>
  c.send(
    new AssociateAddressCommand({
      AllocationId: allocationId,
      NetworkInterfaceId: eni,
      AllowReassociation: true,
      DryRun: dryRun,
    }),
  );

const allow = (Action: string | string[], Resource: string | string[]) => ({
  Effect: 'Allow',
  Action,
  Resource,
});

describe('without registered principals', () => {
  it('serves every caller as before: nothing is checked', async () => {
    const stranger = client({ accessKeyId: 'AKIANOBODY', secretAccessKey: 'whatever' });
    await expect(
      associate(stranger, world.allocationId, world.primary.networkInterfaceId),
    ).resolves.toBeDefined();
    expect(await env.emulator.actions()).toContainEqual(
      expect.objectContaining({ action: 'AssociateAddress', status: 200 }),
    );
  });

  it('with principals registered, unregistered callers (the test setup) are still served', async () => {
    await env.emulator.registerPrincipals(principal({ Statement: [] }));
    await expect(env.ec2.send(new DescribeAddressesCommand({}))).resolves.toBeDefined();
  });
});

describe('authentication of a registered principal', () => {
  it('a wrong secret is AuthFailure (401), as EC2 answers a bad signature', async () => {
    await env.emulator.registerPrincipals(principal({ Statement: [allow('ec2:*', '*')] }));
    const forged = client({ accessKeyId: KEY.accessKeyId, secretAccessKey: 'not-the-secret' });
    expect(await ec2Failure(forged.send(new DescribeAddressesCommand({})))).toMatchObject({
      name: 'AuthFailure',
      status: 401,
    });
    await expect(client().send(new DescribeAddressesCommand({}))).resolves.toBeDefined();
  });

  it('a session token, when registered, must be sent', async () => {
    await env.emulator.registerPrincipals(
      principal({ Statement: [allow('ec2:*', '*')] }, { sessionToken: 'the-token' }),
    );
    expect(await ec2Failure(client().send(new DescribeAddressesCommand({})))).toMatchObject({
      name: 'AuthFailure',
    });
    const withToken = client({ ...KEY, sessionToken: 'the-token' } as typeof KEY);
    await expect(withToken.send(new DescribeAddressesCommand({}))).resolves.toBeDefined();
  });
});

describe('authorization', () => {
  it('by action: an action no statement names is UnauthorizedOperation (403), the model untouched', async () => {
    await env.emulator.registerPrincipals(
      principal({ Statement: [allow('ec2:DescribeAddresses', '*')] }),
    );
    await expect(client().send(new DescribeAddressesCommand({}))).resolves.toBeDefined();
    const refused = await ec2Failure(client().send(new DescribeNetworkInterfacesCommand({})));
    expect(refused).toMatchObject({ name: 'UnauthorizedOperation', status: 403 });
    expect(refused.message).toMatch(
      /^You are not authorized to perform this operation\. User: arn:aws:iam::123456789012:user\/eip-failover is not authorized to perform: ec2:DescribeNetworkInterfaces on resource: \* because no identity-based policy allows/,
    );
    const mutation = await ec2Failure(
      associate(client(), world.allocationId, world.primary.networkInterfaceId),
    );
    expect(mutation.name).toBe('UnauthorizedOperation');
    const log = await env.emulator.actions();
    expect(log.at(-1)).toMatchObject({
      action: 'AssociateAddress',
      status: 403,
      errorCode: 'UnauthorizedOperation',
    });
    const [address] =
      (await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [world.allocationId] })))
        .Addresses ?? [];
    expect(address?.NetworkInterfaceId).toBeUndefined();
  });

  it('by resource: AssociateAddress needs the elastic-ip AND the network-interface allowed', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('ec2:AssociateAddress', [
            arn('elastic-ip', world.allocationId),
            arn('network-interface', world.primary.networkInterfaceId),
          ]),
        ],
      }),
    );
    // Another allocation onto the allowed ENI: refused, naming the elastic-ip.
    const otherEip = await ec2Failure(
      associate(client(), otherAllocation, world.primary.networkInterfaceId),
    );
    expect(otherEip.name).toBe('UnauthorizedOperation');
    expect(otherEip.message).toContain(`on resource: ${arn('elastic-ip', otherAllocation)}`);
    // The allowed allocation onto another ENI: refused, naming the network-interface.
    const otherEni = await ec2Failure(
      associate(client(), world.allocationId, world.secondary.networkInterfaceId),
    );
    expect(otherEni.message).toContain(
      `on resource: ${arn('network-interface', world.secondary.networkInterfaceId)}`,
    );
    // Both allowed: served.
    await expect(
      associate(client(), world.allocationId, world.primary.networkInterfaceId),
    ).resolves.toMatchObject({ AssociationId: expect.stringMatching(/^eipassoc-/) });
  });

  it('by resource: AssociateAddress with InstanceId authorizes the instance', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('ec2:AssociateAddress', [
            arn('elastic-ip', world.allocationId),
            arn('instance', world.primary.instanceId),
          ]),
        ],
      }),
    );
    const send = (instance: string) =>
      client().send(
        new AssociateAddressCommand({
          AllocationId: world.allocationId,
          InstanceId: instance,
          AllowReassociation: true,
        }),
      );
    expect((await ec2Failure(send(world.secondary.instanceId))).message).toContain(
      `on resource: ${arn('instance', world.secondary.instanceId)}`,
    );
    await expect(send(world.primary.instanceId)).resolves.toBeDefined();
  });

  it('by resource: AssignPrivateIpAddresses authorizes the network-interface', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow(
            'ec2:AssignPrivateIpAddresses',
            arn('network-interface', world.primary.networkInterfaceId),
          ),
        ],
      }),
    );
    const assign = (eni: string) =>
      client().send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: eni,
          PrivateIpAddresses: ['10.0.0.50'],
          AllowReassignment: true,
        }),
      );
    expect((await ec2Failure(assign(world.secondary.networkInterfaceId))).name).toBe(
      'UnauthorizedOperation',
    );
    await expect(assign(world.primary.networkInterfaceId)).resolves.toBeDefined();
  });

  it('wildcards: "*" and "?" in actions (case-insensitive) and resources (case-sensitive)', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('EC2:describe*', '*'),
          allow('ec2:Associate?ddress', [
            `arn:aws:ec2:*:${ACCOUNT}:elastic-ip/*`,
            `arn:aws:ec2:${TEST_REGION}:${ACCOUNT}:network-interface/${world.primary.networkInterfaceId.toUpperCase()}`,
            `arn:aws:ec2:${TEST_REGION}:${ACCOUNT}:network-interface/${world.secondary.networkInterfaceId.slice(0, -1)}?`,
          ]),
        ],
      }),
    );
    await expect(client().send(new DescribeNetworkInterfacesCommand({}))).resolves.toBeDefined();
    await expect(
      associate(client(), world.allocationId, world.secondary.networkInterfaceId),
    ).resolves.toBeDefined();
    // The upper-cased ARN does not match the real (lower-case) id: resources are case-sensitive.
    expect(
      (await ec2Failure(associate(client(), otherAllocation, world.primary.networkInterfaceId)))
        .name,
    ).toBe('UnauthorizedOperation');
  });

  it('an explicit Deny wins over any Allow', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('ec2:*', '*'),
          {
            Effect: 'Deny',
            Action: 'ec2:AssociateAddress',
            Resource: arn('elastic-ip', otherAllocation),
          },
        ],
      }),
    );
    const refused = await ec2Failure(
      associate(client(), otherAllocation, world.primary.networkInterfaceId),
    );
    expect(refused.name).toBe('UnauthorizedOperation');
    expect(refused.message).toContain('with an explicit deny in an identity-based policy');
    await expect(
      associate(client(), world.allocationId, world.primary.networkInterfaceId),
    ).resolves.toBeDefined();
  });

  it('NotAction and NotResource', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          {
            Effect: 'Allow',
            NotAction: 'ec2:Describe*',
            NotResource: arn('elastic-ip', otherAllocation),
          },
        ],
      }),
    );
    expect((await ec2Failure(client().send(new DescribeAddressesCommand({})))).name).toBe(
      'UnauthorizedOperation',
    );
    expect(
      (await ec2Failure(associate(client(), otherAllocation, world.primary.networkInterfaceId)))
        .name,
    ).toBe('UnauthorizedOperation');
    await expect(
      associate(client(), world.allocationId, world.primary.networkInterfaceId),
    ).resolves.toBeDefined();
  });

  it('DryRun: DryRunOperation (412) when permitted, UnauthorizedOperation (403) when not; nothing moves', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('ec2:AssociateAddress', [
            arn('elastic-ip', world.allocationId),
            arn('network-interface', world.primary.networkInterfaceId),
          ]),
        ],
      }),
    );
    expect(
      await ec2Failure(
        associate(client(), world.allocationId, world.primary.networkInterfaceId, true),
      ),
    ).toMatchObject({ name: 'DryRunOperation', status: 412 });
    expect(
      await ec2Failure(
        associate(client(), otherAllocation, world.primary.networkInterfaceId, true),
      ),
    ).toMatchObject({ name: 'UnauthorizedOperation', status: 403 });
    const addresses = (await env.ec2.send(new DescribeAddressesCommand({}))).Addresses ?? [];
    expect(addresses.every((a) => a.NetworkInterfaceId === undefined)).toBe(true);
  });
});

describe('conditions (not evaluated: the evaluator errs towards refusing)', () => {
  it('an Allow statement with a Condition never allows, even a condition the request would meet', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          {
            ...allow('ec2:DescribeAddresses', '*'),
            Condition: { StringEquals: { 'aws:RequestedRegion': TEST_REGION } },
          },
        ],
      }),
    );
    expect((await ec2Failure(client().send(new DescribeAddressesCommand({})))).name).toBe(
      'UnauthorizedOperation',
    );
  });

  it('a Deny statement with a Condition always denies, even a condition the request would not meet', async () => {
    await env.emulator.registerPrincipals(
      principal({
        Statement: [
          allow('ec2:*', '*'),
          {
            Effect: 'Deny',
            Action: 'ec2:DescribeAddresses',
            Resource: '*',
            Condition: { StringEquals: { 'aws:RequestedRegion': 'us-east-1' } },
          },
        ],
      }),
    );
    expect((await ec2Failure(client().send(new DescribeAddressesCommand({})))).name).toBe(
      'UnauthorizedOperation',
    );
    await expect(client().send(new DescribeNetworkInterfacesCommand({}))).resolves.toBeDefined();
  });
});

describe('control API', () => {
  it('reset and reset-iam forget the principals', async () => {
    await env.emulator.registerPrincipals(principal({ Statement: [] }));
    expect((await ec2Failure(client().send(new DescribeAddressesCommand({})))).name).toBe(
      'UnauthorizedOperation',
    );
    await env.emulator.resetIam();
    await expect(client().send(new DescribeAddressesCommand({}))).resolves.toBeDefined();
  });

  it('refuses a principal without a policy document', async () => {
    await expect(
      env.emulator.registerPrincipals({ accessKeyId: 'AKIAX' } as unknown as IamPrincipal),
    ).rejects.toThrow(/400/);
  });
});
