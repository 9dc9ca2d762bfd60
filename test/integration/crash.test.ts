import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  eip,
  localIpv4s,
  logLines,
  mutations,
  type Pair,
  runAgent,
  spawnAgent,
  useBundleSuite,
  waitFor,
} from '../support/bundle.js';
import type { FaultRule } from '../support/emulator.js';

/**
 * SIGKILL at each step boundary of a takeover. The next call is held (injected latency, or a
 * hanging IMDS) so the kill lands at a known point; EC2 then applies the held call, as it may
 * after a client dies. The next takeover or reconcile must converge, send only what is missing,
 * and not be held up by the dead process's lock.
 */
const suite = useBundleSuite('eip-failover-crash-');
const env = suite.env;

const VIP = '10.0.0.50';
const HOLD_MS = 3_000;

interface CrashPoint {
  readonly name: string;
  /** Holds the call after the step; absent: the IMDS local-ipv4s read of verification hangs. */
  readonly hold?: FaultRule;
  /** What the run after the crash must still send. */
  readonly remaining: readonly string[];
}

const POINTS: readonly CrashPoint[] = [
  {
    name: 'during observe',
    hold: { action: 'DescribeAddresses', latencyMs: HOLD_MS, latencyCount: 1 },
    remaining: ['AssignPrivateIpAddresses', 'AssociateAddress'],
  },
  {
    name: 'after observe, in AssignPrivateIpAddresses',
    hold: { action: 'AssignPrivateIpAddresses', latencyMs: HOLD_MS, latencyCount: 1 },
    remaining: ['AssociateAddress'],
  },
  {
    name: 'after AssignPrivateIpAddresses, in the re-observe',
    hold: { action: 'DescribeAddresses', latencyMs: HOLD_MS, latencyCount: 1, skip: 1 },
    remaining: ['AssociateAddress'],
  },
  {
    name: 'after the re-observe, in AssociateAddress',
    hold: { action: 'AssociateAddress', latencyMs: HOLD_MS, latencyCount: 1 },
    remaining: [],
  },
  {
    name: 'after AssociateAddress, in verification (DescribeAddresses)',
    hold: { action: 'DescribeAddresses', latencyMs: HOLD_MS, latencyCount: 1, skip: 2 },
    remaining: [],
  },
  { name: 'in verification (IMDS local-ipv4s)', remaining: [] },
];

async function crashAt(pair: Pair, point: CrashPoint): Promise<void> {
  const node = pair.primary;
  if (point.hold) await env.emulator.injectFaults(point.hold);
  else node.imds.setFault({ kind: 'hang', path: '/local-ipv4s' });
  const { child, done } = spawnAgent(env, node, ['takeover']);
  if (point.hold) {
    const held = point.hold.action;
    const skip = point.hold.skip ?? 0;
    // Held: in flight, not yet answered (a call is logged a moment before it leaves the in-flight
    // list), and past the calls let through, which are briefly in flight too.
    await waitFor(`${held} held in the emulator`, async () => {
      const answered = (await env.emulator.actions()).filter((a) => a.action === held);
      const started = new Set(answered.map((a) => a.startedAt));
      return (
        answered.length >= skip &&
        (await env.emulator.inflight()).some((c) => c.action === held && !started.has(c.startedAt))
      );
    });
  } else {
    await waitFor('local-ipv4s asked', async () =>
      node.imds.requests.some((r) => r.path.endsWith('/local-ipv4s') && r.status === 0),
    );
  }
  child.kill('SIGKILL');
  expect((await done).code).toBe(137);
  // EC2 finishes what it received; only then is the state the crash left final.
  await waitFor('no call in flight', async () => (await env.emulator.inflight()).length === 0);
  await env.emulator.resetFaults();
  node.imds.setFault(undefined);
}

describe('SIGKILL mid-takeover, then the next run converges', () => {
  for (const command of ['takeover', 'reconcile'] as const) {
    for (const point of POINTS) {
      it(`killed ${point.name}; then ${command}`, async () => {
        const pair = await suite.pair('same-subnet');
        await env.emulator.resetLog();
        await crashAt(pair, point);
        const lock = join(pair.primary.stateDir, 'takeover.lock');
        // The dead run's lock is still there: the next run must see its owner is gone.
        expect(existsSync(lock)).toBe(true);
        await env.emulator.resetLog();

        const run = await runAgent(env, pair.primary, [command, '--deadline', '15']);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toBe('');
        expect(await eip(env, pair.world)).toEqual({
          eni: pair.primary.world.networkInterfaceId,
          ip: VIP,
          instance: pair.primary.world.instanceId,
        });
        expect(await localIpv4s(env.ec2, pair.primary.world.networkInterfaceId)).toContain(VIP);
        // Only what the crash left undone, never a redundant remap.
        expect(await mutations(env)).toEqual(point.remaining);
        const last = (await logLines(pair.primary)).filter((l) => l.command === command).at(-1);
        expect(last?.msg).toBe(
          point.remaining.length > 0 ? 'takeover verified' : 'already held: nothing to do',
        );
        expect(existsSync(lock)).toBe(false);
      });
    }
  }
});
