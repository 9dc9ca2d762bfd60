import { describe, expect, it } from 'vitest';
import {
  type AgentNode,
  eip,
  localIpv4s,
  logLines,
  type Pair,
  type Run,
  runAgent,
  spawnAgent,
  useBundleSuite,
} from '../support/bundle.js';

/**
 * A flapping storm through notify scripts: 50 transitions in about 10 s, each hook its own
 * process, started as keepalived forks them (in order, without waiting for the previous one).
 * The last transition decides where the addresses end up, and on each node the EC2 calls of
 * different invocations never interleave (the takeover lock).
 */
const suite = useBundleSuite('eip-failover-storm-');
const env = suite.env;

const VIP = '10.0.0.50';

/** A fixed pseudo-random sequence: the same interleaving on every run. */
function prng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

type Transition = { node: AgentNode; state: 'MASTER' | 'BACKUP' };

/** Forks each hook in order, spaced around gapMs, and waits for all of them to end. */
async function storm(
  transitions: readonly Transition[],
  gapMs: number,
): Promise<{ t: Transition; run: Run }[]> {
  const random = prng(7);
  const pending: Promise<{ t: Transition; run: Run }>[] = [];
  for (const t of transitions) {
    const args = t.state === 'MASTER' ? ['takeover'] : ['release', 'BACKUP'];
    const { done } = spawnAgent(env, t.node, args);
    pending.push(done.then((run) => ({ t, run })));
    await new Promise((r) => setTimeout(r, Math.round(gapMs * (0.25 + 1.5 * random()))));
  }
  return Promise.all(pending);
}

/**
 * On one node: each invocation that took the lock holds it from its "lock" step to its outcome
 * line; those windows must not overlap, and every mutating call EC2 applied for this node's ENI
 * must fall inside exactly one of them.
 */
async function expectSerialized(node: AgentNode): Promise<number> {
  const lines = await logLines(node);
  const windows = new Map<string, { start: number; end: number }>();
  for (const l of lines) {
    if (l.failoverId === undefined) continue;
    const t = Date.parse(l.time);
    if (l.msg === 'step done' && l.step === 'lock') windows.set(l.failoverId, { start: t, end: t });
    const w = windows.get(l.failoverId);
    if (w !== undefined) w.end = Math.max(w.end, t);
  }
  const sorted = [...windows.values()].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    expect(sorted[i]?.start).toBeGreaterThanOrEqual(sorted[i - 1]?.end ?? 0);
  }
  const calls = (await env.emulator.actions()).filter(
    (a) => a.mutating && a.params.NetworkInterfaceId === node.world.networkInterfaceId,
  );
  for (const call of calls) {
    const from = Date.parse(call.startedAt);
    const to = Date.parse(call.finishedAt);
    const inside = sorted.filter((w) => w.start <= from && to <= w.end);
    expect(inside, `${call.action} at ${call.startedAt}`).toHaveLength(1);
  }
  return calls.length;
}

async function expectHeldBy(pair: Pair, node: AgentNode): Promise<void> {
  expect(await eip(env, pair.world)).toEqual({
    eni: node.world.networkInterfaceId,
    ip: VIP,
    instance: node.world.instanceId,
  });
  expect(await localIpv4s(env.ec2, node.world.networkInterfaceId)).toContain(VIP);
}

describe('a flapping storm through notify scripts', () => {
  it('both nodes flap 25 times (50 hooks in ~10 s); the last MASTER holds the addresses', async () => {
    const pair = await suite.pair('same-subnet');
    await env.emulator.resetLog();
    const transitions: Transition[] = [];
    for (let flip = 0; flip < 25; flip++) {
      // The old MASTER's keepalived reports BACKUP as the new MASTER's reports MASTER.
      const [up, down] =
        flip % 2 === 0 ? [pair.primary, pair.secondary] : [pair.secondary, pair.primary];
      transitions.push({ node: down, state: 'BACKUP' }, { node: up, state: 'MASTER' });
    }
    const runs = await storm(transitions, 200);
    for (const { t, run } of runs) {
      // Takeovers end verified, no-op or superseded; releases always succeed.
      expect(t.state === 'MASTER' ? [0, 3] : [0], run.stderr).toContain(run.code);
    }
    const last = runs.at(-1);
    expect(last?.t).toMatchObject({ node: pair.primary, state: 'MASTER' });
    expect(last?.run.code, last?.run.stderr).toBe(0);
    await expectHeldBy(pair, pair.primary);
    const calls = (await expectSerialized(pair.primary)) + (await expectSerialized(pair.secondary));
    expect(calls).toBeGreaterThan(0);
    // And the peer's hooks left it at BACKUP: its status agrees nothing is held there.
    const status = await runAgent(env, pair.secondary, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      consistent: true,
      node: { vrrpState: 'BACKUP' },
    });
  }, 90_000);

  it('one node alternates MASTER/BACKUP 50 times in ~10 s, ending MASTER, against a peer that held it', async () => {
    const pair = await suite.pair('same-subnet');
    expect((await runAgent(env, pair.secondary, ['takeover'])).code).toBe(0);
    expect((await runAgent(env, pair.secondary, ['release', 'BACKUP'])).code).toBe(0);
    await env.emulator.resetLog();
    const transitions: Transition[] = [];
    for (let i = 0; i < 50; i++) {
      transitions.push({ node: pair.primary, state: i % 2 === 0 ? 'BACKUP' : 'MASTER' });
    }
    const runs = await storm(transitions, 200);
    for (const { t, run } of runs) {
      expect(t.state === 'MASTER' ? [0, 3] : [0], run.stderr).toContain(run.code);
    }
    expect(runs.at(-1)?.run.code).toBe(0);
    await expectHeldBy(pair, pair.primary);
    const calls = await expectSerialized(pair.primary);
    expect(calls).toBeGreaterThan(0);
    const status = await runAgent(env, pair.primary, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      consistent: true,
      node: { vrrpState: 'MASTER' },
    });
  }, 90_000);
});
