// Fault injection and the action log: what the agent's integration tests lean on to prove
// retries, deadlines and "no mutating call on a no-op takeover".
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { createWorld } from '../support/world.js';
import { ec2Failure, useEmulator } from './helpers.js';

const env = useEmulator();

const describeAddresses = () => env.ec2.send(new DescribeAddressesCommand({}));

describe('throttling', () => {
  it('answers the next N calls of the action with RequestLimitExceeded (HTTP 503), then serves it', async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', throttle: 2 });

    expect(await ec2Failure(describeAddresses())).toMatchObject({
      name: 'RequestLimitExceeded',
      status: 503,
    });
    expect((await ec2Failure(describeAddresses())).name).toBe('RequestLimitExceeded');
    await expect(describeAddresses()).resolves.toBeDefined();

    const log = await env.emulator.actions();
    expect(log.map((a) => [a.action, a.status, a.fault, a.errorCode])).toEqual([
      ['DescribeAddresses', 503, 'throttle', 'RequestLimitExceeded'],
      ['DescribeAddresses', 503, 'throttle', 'RequestLimitExceeded'],
      ['DescribeAddresses', 200, null, null],
    ]);
  });

  it('throttles only the named action', async () => {
    await env.emulator.injectFaults({ action: 'AssociateAddress', throttle: 5 });

    await expect(describeAddresses()).resolves.toBeDefined();
  });

  it('with action "*" throttles every action', async () => {
    await env.emulator.injectFaults({ action: '*', throttle: 2 });

    expect((await ec2Failure(describeAddresses())).name).toBe('RequestLimitExceeded');
    expect((await ec2Failure(env.ec2.send(new DescribeNetworkInterfacesCommand({})))).name).toBe(
      'RequestLimitExceeded',
    );
    await expect(describeAddresses()).resolves.toBeDefined();
  });

  it("is absorbed by the SDK's own retries when the client allows them", async () => {
    const retrying = env.emulator.client({ maxAttempts: 3 });
    await env.emulator.injectFaults({ action: 'DescribeAddresses', throttle: 1 });

    await expect(retrying.send(new DescribeAddressesCommand({}))).resolves.toBeDefined();

    const log = await env.emulator.actions();
    expect(log.filter((a) => a.fault === 'throttle')).toHaveLength(1);
    expect(log).toHaveLength(2);
    retrying.destroy();
  });

  it("answers in EC2's XML error format", async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', throttle: 1 });

    const res = await fetch(env.emulator.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeAddresses&Version=2016-11-15',
    });

    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(
      /<Response><Errors><Error><Code>RequestLimitExceeded<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    );
  });
});

describe('server errors', () => {
  it('answers the next N calls with InternalError (HTTP 500) by default', async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', error: { count: 1 } });

    expect(await ec2Failure(describeAddresses())).toMatchObject({
      name: 'InternalError',
      status: 500,
    });
    await expect(describeAddresses()).resolves.toBeDefined();
  });

  it('answers with the code and status given, e.g. Unavailable (HTTP 503)', async () => {
    await env.emulator.injectFaults({
      action: 'DescribeAddresses',
      error: { count: 2, code: 'Unavailable', status: 503 },
    });

    expect(await ec2Failure(describeAddresses())).toMatchObject({
      name: 'Unavailable',
      status: 503,
    });
    expect((await ec2Failure(describeAddresses())).name).toBe('Unavailable');
    await expect(describeAddresses()).resolves.toBeDefined();
  });

  it('serves injected throttling before injected errors', async () => {
    await env.emulator.injectFaults([
      { action: 'DescribeAddresses', error: { count: 1 } },
      { action: 'DescribeAddresses', throttle: 1 },
    ]);

    expect((await ec2Failure(describeAddresses())).name).toBe('RequestLimitExceeded');
    expect((await ec2Failure(describeAddresses())).name).toBe('InternalError');
    await expect(describeAddresses()).resolves.toBeDefined();
  });
});

describe('latency', () => {
  it('delays every call of the action until reset, and the client observes it', async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', latencyMs: 300 });

    const started = performance.now();
    await describeAddresses();
    const elapsed = performance.now() - started;

    expect(elapsed).toBeGreaterThanOrEqual(290);
    const [entry] = await env.emulator.actions();
    expect(entry?.durationMs).toBeGreaterThanOrEqual(290);

    await env.emulator.resetFaults();
    const again = performance.now();
    await describeAddresses();
    expect(performance.now() - again).toBeLessThan(290);
  });
});

describe('observers exempt from faults', () => {
  it('serves a request with the exempt header without latency or faults, and leaves them for the others', async () => {
    const observer = env.emulator.client({ maxAttempts: 1, exemptFromFaults: true });
    await env.emulator.injectFaults({ action: '*', latencyMs: 300, throttle: 1 });

    const started = performance.now();
    await observer.send(new DescribeNetworkInterfacesCommand({}));
    expect(performance.now() - started).toBeLessThan(290);
    // The throttle is still pending for the client under test, and so is the latency.
    const again = performance.now();
    expect((await ec2Failure(describeAddresses())).name).toBe('RequestLimitExceeded');
    expect(performance.now() - again).toBeGreaterThanOrEqual(290);

    const log = await env.emulator.actions();
    expect(log.map((a) => [a.action, a.exempt, a.fault])).toEqual([
      ['DescribeNetworkInterfaces', true, null],
      ['DescribeAddresses', false, 'throttle'],
    ]);
    observer.destroy();
  });
});

describe('action log', () => {
  it('records each action in order with its parameters, status, and whether it mutates', async () => {
    const { AllocationId } = await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
    await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [AllocationId ?? ''] }));
    await ec2Failure(
      env.ec2.send(
        new AssociateAddressCommand({
          AllocationId,
          NetworkInterfaceId: 'eni-0123456789abcdef0',
          PrivateIpAddress: '10.0.0.50',
          AllowReassociation: true,
          DryRun: true,
        }),
      ),
    );

    const log = await env.emulator.actions();

    expect(log).toMatchObject([
      { seq: 1, action: 'AllocateAddress', mutating: true, status: 200, params: { Domain: 'vpc' } },
      {
        seq: 2,
        action: 'DescribeAddresses',
        mutating: false,
        status: 200,
        params: { 'AllocationId.1': AllocationId },
      },
      {
        seq: 3,
        action: 'AssociateAddress',
        mutating: true,
        dryRun: true,
        status: 400,
        errorCode: 'InvalidNetworkInterfaceID.NotFound',
        params: {
          AllocationId,
          NetworkInterfaceId: 'eni-0123456789abcdef0',
          PrivateIpAddress: '10.0.0.50',
          AllowReassociation: 'true',
        },
      },
    ]);
    for (const entry of log) {
      expect(Date.parse(entry.finishedAt)).toBeGreaterThanOrEqual(Date.parse(entry.startedAt));
    }
  });

  it('lets a test assert that only read-only calls were made', async () => {
    await describeAddresses();
    await env.ec2.send(new DescribeNetworkInterfacesCommand({}));

    expect((await env.emulator.actions()).filter((a) => a.mutating)).toEqual([]);
  });

  it('resets the log and the faults independently', async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', throttle: 1 });
    await describeAddresses().catch(() => undefined);

    await env.emulator.resetLog();
    expect(await env.emulator.actions()).toEqual([]);

    await env.emulator.injectFaults({ action: 'DescribeAddresses', throttle: 1 });
    await env.emulator.resetFaults();
    await expect(describeAddresses()).resolves.toBeDefined();
    expect(await env.emulator.actions()).toHaveLength(1);
  });
});

describe('control API', () => {
  it('refuses a rule without an action (HTTP 400) and an unknown path (HTTP 404)', async () => {
    const bad = await fetch(`${env.emulator.endpoint}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ throttle: 1 }),
    });
    expect(bad.status).toBe(400);

    const unknown = await fetch(`${env.emulator.endpoint}/_emulator/nothing-here`);
    expect(unknown.status).toBe(404);
  });

  it('reports the rules in force', async () => {
    await env.emulator.injectFaults({ action: 'AssociateAddress', latencyMs: 50, throttle: 2 });

    const res = await fetch(`${env.emulator.endpoint}/_emulator/faults`);

    expect(await res.json()).toEqual({
      AssociateAddress: {
        latencyMs: 50,
        latencyCount: null,
        throttle: 2,
        errors: [],
        reset: 0,
        malformed: 0,
        dropFields: { names: [], count: null },
        stale: 0,
        skip: 0,
      },
    });
  });
});

describe('latency on the next N calls, after skipping some', () => {
  it('latencyCount delays only that many calls; skip lets the first calls pass untouched', async () => {
    await env.emulator.injectFaults({
      action: 'DescribeAddresses',
      latencyMs: 300,
      latencyCount: 1,
      skip: 1,
    });
    for (let i = 0; i < 3; i++) await describeAddresses();
    const durations = (await env.emulator.actions()).map((a) => a.durationMs);
    expect(durations[0]).toBeLessThan(290);
    expect(durations[1]).toBeGreaterThanOrEqual(290);
    expect(durations[2]).toBeLessThan(290);
  });

  it('lists a call held by latency as in flight until it is answered', async () => {
    await env.emulator.injectFaults({ action: 'DescribeAddresses', latencyMs: 1_000 });
    const pending = describeAddresses();
    let seen: { action: string }[] = [];
    for (let i = 0; i < 50 && seen.length === 0; i++) {
      seen = await env.emulator.inflight();
      if (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen).toMatchObject([{ action: 'DescribeAddresses' }]);
    await pending;
    expect(await env.emulator.inflight()).toEqual([]);
  });
});

describe('broken connections and answers', () => {
  it('reset closes the connection without an answer and does not apply the call', async () => {
    await env.emulator.injectFaults({ action: 'AllocateAddress', reset: 1 });
    const err = await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' })).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toBe('ECONNRESET');
    expect((await describeAddresses()).Addresses).toEqual([]);
    expect((await env.emulator.actions())[0]).toMatchObject({
      action: 'AllocateAddress',
      status: 0,
      fault: 'reset',
    });
  });

  it('malformed applies the call, then answers 200 with a body that is not XML', async () => {
    await env.emulator.injectFaults({ action: 'AllocateAddress', malformed: 1 });
    const err = await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' })).then(
      () => null,
      (e: { message: string; $metadata?: { httpStatusCode?: number } }) => e,
    );
    expect(err?.message).toMatch(/XML parse error/);
    expect(err?.$metadata?.httpStatusCode).toBe(200);
    // Applied: EC2 did the work; only the answer was lost.
    expect((await describeAddresses()).Addresses).toHaveLength(1);
    expect((await env.emulator.actions())[0]).toMatchObject({ status: 200, fault: 'malformed' });
  });

  it('dropFields removes the named elements from the next N answers', async () => {
    await env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
    await env.emulator.injectFaults({
      action: 'DescribeAddresses',
      dropFields: { names: ['publicIp'], count: 1 },
    });
    const [first] = (await describeAddresses()).Addresses ?? [];
    expect(first?.AllocationId).toMatch(/^eipalloc-/);
    expect(first?.PublicIp).toBeUndefined();
    expect((await describeAddresses()).Addresses?.[0]?.PublicIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('dropFields refuses a name that is not an XML element name', async () => {
    const res = await fetch(`${env.emulator.endpoint}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ action: 'DescribeAddresses', dropFields: ['a>b'] }),
    });
    expect(res.status).toBe(400);
  });
});

describe('eventual consistency', () => {
  it('stale: after a change, the next N DescribeAddresses show the association before it', async () => {
    const world = await createWorld(env.ec2, { mode: 'cross-az' });
    await env.emulator.injectFaults({ action: 'DescribeAddresses', stale: 2 });
    const associate = (eni: string, ip: string) =>
      env.ec2.send(
        new AssociateAddressCommand({
          AllocationId: world.allocationId,
          NetworkInterfaceId: eni,
          PrivateIpAddress: ip,
          AllowReassociation: true,
        }),
      );
    const where = async () =>
      (await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [world.allocationId] })))
        .Addresses?.[0]?.NetworkInterfaceId ?? null;

    await associate(world.primary.networkInterfaceId, world.primary.privateIp);
    expect(await where()).toBeNull();
    expect(await where()).toBeNull();
    expect(await where()).toBe(world.primary.networkInterfaceId);

    await associate(world.secondary.networkInterfaceId, world.secondary.privateIp);
    expect(await where()).toBe(world.primary.networkInterfaceId);
    expect(await where()).toBe(world.primary.networkInterfaceId);
    expect(await where()).toBe(world.secondary.networkInterfaceId);
  });

  it('stale is refused on any action but DescribeAddresses', async () => {
    const res = await fetch(`${env.emulator.endpoint}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ action: 'DescribeNetworkInterfaces', stale: 1 }),
    });
    expect(res.status).toBe(400);
  });
});
