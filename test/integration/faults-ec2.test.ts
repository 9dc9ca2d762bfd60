import { describe, expect, it } from 'vitest';
import {
  type AgentNode,
  eip,
  localIpv4s,
  logLines,
  mutations,
  type Pair,
  type PairOptions,
  runAgent,
  useBundleSuite,
  waitFor,
} from '../support/bundle.js';
import type { FaultRule } from '../support/emulator.js';

/**
 * Deterministic EC2 faults against the built agent: each case asserts the exit code, the stderr
 * line and the log line, where the Elastic IP and the VIP end up, and which calls EC2 applied —
 * so nothing is left half-done, and no mutating call follows an answer the agent could not read.
 */
const suite = useBundleSuite('eip-failover-faults-');
const env = suite.env;

const VIP = '10.0.0.50';

async function samePair(options: PairOptions = {}): Promise<Pair> {
  const pair = await suite.pair('same-subnet', options);
  await env.emulator.resetLog();
  return pair;
}

/** EIP and VIP both on this node, as EC2 reports them. */
async function expectHeld(pair: Pair, node: AgentNode): Promise<void> {
  expect(await eip(env, pair.world)).toEqual({
    eni: node.world.networkInterfaceId,
    ip: VIP,
    instance: node.world.instanceId,
  });
  expect(await localIpv4s(env.ec2, node.world.networkInterfaceId)).toContain(VIP);
}

async function outcome(node: AgentNode): Promise<string | undefined> {
  const lines = await logLines(node);
  return lines.filter((l) => typeof l.outcome === 'string').at(-1)?.msg;
}

const TAKEOVER_CALLS = [
  'DescribeAddresses',
  'DescribeNetworkInterfaces',
  'AssignPrivateIpAddresses',
  'AssociateAddress',
] as const;

describe('transient faults on each call of a takeover are retried to a verified takeover', () => {
  const kinds: { name: string; rule: Omit<FaultRule, 'action'>; fault: string }[] = [
    { name: 'a throttling burst', rule: { throttle: 3 }, fault: 'throttle' },
    {
      name: 'InternalError 500 twice',
      rule: { error: { count: 2, code: 'InternalError', status: 500 } },
      fault: 'error',
    },
    {
      name: 'Unavailable 503 twice',
      rule: { error: { count: 2, code: 'Unavailable', status: 503 } },
      fault: 'error',
    },
    { name: 'two connection resets', rule: { reset: 2 }, fault: 'reset' },
  ];
  for (const action of TAKEOVER_CALLS) {
    for (const kind of kinds) {
      it(`${action}: ${kind.name}`, async () => {
        const pair = await samePair();
        await env.emulator.injectFaults({ action, ...kind.rule });
        const run = await runAgent(env, pair.primary, ['takeover']);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toBe('');
        expect(await outcome(pair.primary)).toBe('takeover verified');
        await expectHeld(pair, pair.primary);
        const log = await env.emulator.actions();
        expect(log.filter((a) => a.action === action && a.fault === kind.fault).length).toBe(
          kind.rule.throttle ?? kind.rule.reset ?? kind.rule.error?.count,
        );
        // Each move was applied once: retries repeat only what failed.
        expect(await mutations(env)).toEqual(['AssignPrivateIpAddresses', 'AssociateAddress']);
      });
    }
  }

  for (const action of TAKEOVER_CALLS) {
    it(`${action}: one answer slower than the per-attempt timeout (5 s) is retried`, async () => {
      const pair = await samePair();
      await env.emulator.injectFaults({ action, latencyMs: 6_500, latencyCount: 1 });
      const run = await runAgent(env, pair.primary, ['takeover']);
      expect(run.code, run.stderr).toBe(0);
      expect(await outcome(pair.primary)).toBe('takeover verified');
      await expectHeld(pair, pair.primary);
      // EC2 still applies the attempt the agent gave up on; once it has, nothing has changed.
      await waitFor(
        'the slow call to end',
        async () => (await env.emulator.inflight()).length === 0,
      );
      await expectHeld(pair, pair.primary);
      const lines = await logLines(pair.primary);
      expect(
        lines.some((l) => l.msg === 'ec2 call will be retried' && l.action === action),
        JSON.stringify(lines.filter((l) => l.action !== undefined)),
      ).toBe(true);
    }, 40_000);
  }
});

describe('refused calls: exit 1, one line naming the fix, nothing sent after the refusal', () => {
  for (const action of TAKEOVER_CALLS) {
    it(`${action}: UnauthorizedOperation`, async () => {
      const pair = await samePair();
      await env.emulator.injectFaults({
        action,
        error: { code: 'UnauthorizedOperation', status: 403, count: 10 },
      });
      const run = await runAgent(env, pair.primary, ['takeover']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(
          `^eip-failover: takeover failed: ${action} was refused \\(UnauthorizedOperation\\).*instance profile`,
        ),
      );
      expect(await outcome(pair.primary)).toBe('takeover failed');
      await env.emulator.resetFaults();
      const log = await env.emulator.actions();
      // Not retried, and nothing after it.
      expect(log.filter((a) => a.errorCode === 'UnauthorizedOperation')).toHaveLength(1);
      const refusedAt = log.findIndex((a) => a.errorCode === 'UnauthorizedOperation');
      expect(log.slice(refusedAt + 1).filter((a) => a.mutating)).toEqual([]);
      if (action === 'AssociateAddress') {
        // Half-done: the VIP moved, the EIP did not. The next takeover sends only the remap.
        expect(await eip(env, pair.world)).toEqual({});
        expect(await localIpv4s(env.ec2, pair.primary.world.networkInterfaceId)).toContain(VIP);
        await env.emulator.resetFaults();
        await env.emulator.resetLog();
        expect((await runAgent(env, pair.primary, ['takeover'])).code).toBe(0);
        expect(await mutations(env)).toEqual(['AssociateAddress']);
        await expectHeld(pair, pair.primary);
      } else {
        expect(await mutations(env)).toEqual([]);
        expect(await eip(env, pair.world)).toEqual({});
      }
    });
  }

  it('InvalidAllocationID.NotFound: exit 1 naming allocationId and region, no mutating call', async () => {
    const pair = await samePair({
      address: () => ({ allocationId: 'eipalloc-0123456789abcdef0', privateIp: VIP }),
    });
    const run = await runAgent(env, pair.primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /DescribeAddresses: the Elastic IP allocation does not exist in this region \(InvalidAllocationID.NotFound\); check allocationId and region/,
    );
    expect(await outcome(pair.primary)).toBe('takeover failed');
    expect(await mutations(env)).toEqual([]);
  });

  it('the endpoint refuses connections: retried until the deadline, exit 1 naming ECONNREFUSED', async () => {
    const pair = await samePair();
    const run = await runAgent(env, pair.primary, ['takeover', '--deadline', '5'], {
      AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/takeover failed: .*ECONNREFUSED/);
    expect(await outcome(pair.primary)).toBe('takeover failed');
    expect(await env.emulator.actions()).toEqual([]);
  });
});

describe('answers the agent cannot read: never a mutating call after one', () => {
  const cases: {
    name: string;
    rule: FaultRule;
    applied: string[];
    stderr: RegExp;
    /** Start with the EIP unassociated (so the takeover needs AssociateAddress). */
    fresh?: boolean;
  }[] = [
    {
      name: 'DescribeAddresses (observe) answers malformed XML',
      rule: { action: 'DescribeAddresses', malformed: 1 },
      applied: [],
      stderr: /DescribeAddresses failed .*XML parse error/,
    },
    {
      name: 'DescribeNetworkInterfaces answers malformed XML',
      rule: { action: 'DescribeNetworkInterfaces', malformed: 1 },
      applied: [],
      stderr: /DescribeNetworkInterfaces failed .*XML parse error/,
    },
    {
      name: 'AssignPrivateIpAddresses is applied but its answer is malformed',
      rule: { action: 'AssignPrivateIpAddresses', malformed: 1 },
      applied: ['AssignPrivateIpAddresses'],
      stderr: /AssignPrivateIpAddresses failed .*XML parse error/,
    },
    {
      name: 'DescribeAddresses (re-observe after the assign) answers malformed XML',
      rule: { action: 'DescribeAddresses', malformed: 1, skip: 1 },
      applied: ['AssignPrivateIpAddresses'],
      stderr: /DescribeAddresses failed .*XML parse error/,
    },
    {
      name: 'AssociateAddress is applied but its answer is malformed',
      rule: { action: 'AssociateAddress', malformed: 1 },
      applied: ['AssignPrivateIpAddresses', 'AssociateAddress'],
      fresh: true,
      stderr: /AssociateAddress failed .*XML parse error/,
    },
    {
      name: 'DescribeAddresses omits publicIp',
      rule: { action: 'DescribeAddresses', dropFields: { names: ['publicIp'], count: 1 } },
      applied: [],
      stderr: /DescribeAddresses did not return allocation/,
    },
    {
      name: 'DescribeAddresses omits addressesSet',
      rule: { action: 'DescribeAddresses', dropFields: { names: ['addressesSet'], count: 1 } },
      applied: [],
      stderr: /DescribeAddresses did not return allocation/,
    },
    {
      name: 'DescribeNetworkInterfaces omits networkInterfaceSet',
      rule: {
        action: 'DescribeNetworkInterfaces',
        dropFields: { names: ['networkInterfaceSet'], count: 1 },
      },
      applied: [],
      stderr: /DescribeNetworkInterfaces answered without the interfaces or addresses/,
    },
    {
      name: 'DescribeNetworkInterfaces omits privateIpAddressesSet',
      rule: {
        action: 'DescribeNetworkInterfaces',
        dropFields: { names: ['privateIpAddressesSet'], count: 1 },
      },
      applied: [],
      stderr: /DescribeNetworkInterfaces answered without/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const pair = await samePair();
      // The peer holds the VIP and the EIP: a takeover here must move both.
      if (!c.fresh) expect((await runAgent(env, pair.secondary, ['takeover'])).code).toBe(0);
      await env.emulator.resetLog();
      await env.emulator.injectFaults(c.rule);
      const run = await runAgent(env, pair.primary, ['takeover']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(c.stderr);
      expect(await outcome(pair.primary)).toBe('takeover failed');
      expect(await mutations(env)).toEqual(c.applied);
      const log = await env.emulator.actions();
      const unreadable = log.findIndex((a) => a.fault === 'malformed' || a.fault === 'dropFields');
      const after = log.slice(unreadable + 1).filter((a) => a.mutating);
      expect(after).toEqual([]);
      // Whatever was half-done, the next takeover converges, sending only what is missing.
      await env.emulator.resetFaults();
      await env.emulator.resetLog();
      const again = await runAgent(env, pair.primary, ['takeover']);
      expect(again.code, again.stderr).toBe(0);
      await expectHeld(pair, pair.primary);
      const redo = await mutations(env);
      expect(redo).toEqual(
        c.applied.includes('AssignPrivateIpAddresses') ? [] : ['AssignPrivateIpAddresses'],
      );
    });
  }

  it('DescribeAddresses shows an association without its interface: no move on that answer', async () => {
    const pair = await samePair();
    expect((await runAgent(env, pair.secondary, ['takeover'])).code).toBe(0);
    await env.emulator.resetLog();
    await env.emulator.injectFaults({
      action: 'DescribeAddresses',
      dropFields: { names: ['networkInterfaceId'], count: 1 },
    });
    const run = await runAgent(env, pair.primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /DescribeAddresses answered allocation eipalloc-\w+ as associated but without its network interface/,
    );
    expect(await mutations(env)).toEqual([]);
    await expectHeld(pair, pair.secondary);
  });
});

describe('eventual consistency: DescribeAddresses answers the old association for a while', () => {
  it('verification polls past stale answers to a verified takeover', async () => {
    const pair = await samePair();
    expect((await runAgent(env, pair.secondary, ['takeover'])).code).toBe(0);
    await env.emulator.resetLog();
    await env.emulator.injectFaults({ action: 'DescribeAddresses', stale: 3 });
    const run = await runAgent(env, pair.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(await outcome(pair.primary)).toBe('takeover verified');
    await expectHeld(pair, pair.primary);
    const lines = await logLines(pair.primary);
    expect(lines.some((l) => l.msg === 'not yet visible; polling')).toBe(true);
    // The re-observe saw the EIP still on the peer, so the remap was sent; it is harmless.
    expect(await mutations(env)).toEqual(['AssignPrivateIpAddresses', 'AssociateAddress']);
  });

  it('stale past the deadline: exit 1 naming what DescribeAddresses showed; the next run is a no-op', async () => {
    const pair = await samePair();
    await env.emulator.injectFaults({ action: 'DescribeAddresses', stale: 10_000 });
    const run = await runAgent(env, pair.primary, ['takeover', '--deadline', '5']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /not verified within the 5 s deadline: DescribeAddresses last showed \[null\]/,
    );
    expect(await outcome(pair.primary)).toBe('takeover failed');
    await env.emulator.resetFaults();
    await env.emulator.resetLog();
    expect((await runAgent(env, pair.primary, ['takeover'])).code).toBe(0);
    expect(await mutations(env)).toEqual([]);
    await expectHeld(pair, pair.primary);
  });
});

describe('topology the agent must refuse before any EC2 call', () => {
  it('a VIP outside the subnet', async () => {
    const pair = await samePair({
      address: (world) => ({ allocationId: world.allocationId, privateIp: '10.0.9.50' }),
    });
    const run = await runAgent(env, pair.primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /private IP 10\.0\.9\.50 is outside this node's subnet 10\.0\.0\.0\/24 .*cross-az mode/,
    );
    expect(await env.emulator.actions()).toEqual([]);
  });

  it('same-subnet mode on an ENI in another AZ points at cross-az mode', async () => {
    const pair = await suite.pair('cross-az', {
      address: (world) => ({ allocationId: world.allocationId, privateIp: VIP }),
    });
    await env.emulator.resetLog();
    const run = await runAgent(env, pair.secondary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /private IP 10\.0\.0\.50 is outside this node's subnet 10\.0\.1\.0\/24 \(subnet-[0-9a-f]+, eu-central-1b\).*leave privateIp out \(cross-az mode\)/,
    );
    expect(await env.emulator.actions()).toEqual([]);
    expect(await eip(env, pair.world)).toEqual({});
  });
});
