import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { type FileHandle, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DescribeAddressesCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AgentNode,
  agentEnv,
  BUNDLE,
  logLines,
  type Pair,
  useBundleSuite,
  waitFor,
} from '../support/bundle.js';

/**
 * The warm mode: the built bundle's `fifo` command reading a real FIFO the way keepalived's
 * vrrp_notify_fifo_script does (keepalived holds the write end open and writes one line per
 * transition), against the EC2 emulator and an IMDSv2 stub on loopback.
 */
const suite = useBundleSuite('eip-failover-fifo-');
const env = suite.env;

interface FifoNode extends AgentNode {
  readonly fifo: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number>;
  stderr: string;
  writer?: FileHandle;
}

let pair: Pair;
const running: FifoNode[] = [];

afterEach(async () => {
  for (const node of running.splice(0)) {
    await node.writer?.close().catch(() => undefined);
    node.child.kill('SIGKILL');
  }
});

/** Starts `eip-failover fifo` for one node and opens the FIFO's write end, as keepalived does. */
async function startFifo(node: AgentNode, extra: string[] = []): Promise<FifoNode> {
  const fifo = `${node.stateDir}.fifo`;
  execFileSync('mkfifo', ['-m', '0600', fifo]);
  const child = spawn(
    process.execPath,
    [BUNDLE, 'fifo', '-c', node.config, '--instance', 'VI_EIP', ...extra, fifo],
    { env: agentEnv(env, node), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<number>((done) => child.on('exit', (code) => done(code ?? -1)));
  const started: FifoNode = { ...node, fifo, child, exited, stderr: '' };
  child.stderr?.on('data', (chunk: Buffer) => {
    started.stderr += chunk.toString();
  });
  running.push(started);
  started.writer = await open(fifo, 'w');
  return started;
}

async function say(node: FifoNode, state: string, priority = 100): Promise<void> {
  await node.writer?.write(`INSTANCE "VI_EIP" ${state} ${priority}\n`);
}

async function eipEni(): Promise<string | undefined> {
  const out = await env.ec2.send(
    new DescribeAddressesCommand({ AllocationIds: [pair.world.allocationId] }),
  );
  return out.Addresses?.[0]?.NetworkInterfaceId;
}

async function state(node: FifoNode) {
  const text = await readFile(join(node.stateDir, 'state.json'), 'utf8').catch(() => '{"seq":0}');
  return JSON.parse(text) as {
    seq: number;
    vrrpState: string;
    lastTakeover: { outcome: string; seq: number } | null;
  };
}

const verifiedCount = async (node: FifoNode) =>
  (await logLines(node)).filter((l) => l.msg === 'takeover verified').length;

describe('fifo: the warm agent as keepalived’s vrrp_notify_fifo_script', () => {
  beforeEach(async () => {
    pair = await suite.pair('same-subnet');
  });

  it('acts on MASTER, records the rest, and fails over both ways with warm processes', async () => {
    const primary = await startFifo(pair.primary);
    const secondary = await startFifo(pair.secondary);
    // Both warm up and look where the address is before keepalived says anything.
    await waitFor('both warm', async () =>
      (await logLines(primary)).some((l) => l.msg === 'fifo: warm') &&
      (await logLines(secondary)).some((l) => l.msg === 'fifo: warm')
        ? true
        : undefined,
    );
    await say(secondary, 'BACKUP');
    await say(primary, 'MASTER', 150);
    await waitFor('primary verified', async () =>
      (await verifiedCount(primary)) === 1 ? 1 : undefined,
    );
    expect(await eipEni()).toBe(pair.world.primary.networkInterfaceId);
    expect((await state(primary)).lastTakeover?.outcome).toBe('verified');
    expect((await state(secondary)).vrrpState).toBe('BACKUP');

    // Let the primary look where things are while it is BACKUP, then fail over to the secondary.
    await env.emulator.resetLog();
    await say(primary, 'BACKUP', 150);
    await say(secondary, 'MASTER');
    await waitFor('secondary verified', async () =>
      (await verifiedCount(secondary)) === 1 ? 1 : undefined,
    );
    expect(await eipEni()).toBe(pair.world.secondary.networkInterfaceId);
    // The secondary had seen the address elsewhere at warm-up: the move is its first EC2 call,
    // the EIP followed its private IP, and one DescribeAddresses both decided and verified.
    const calls = (await env.emulator.actions()).map((a) => a.action);
    const assignAt = calls.indexOf('AssignPrivateIpAddresses');
    expect(assignAt).toBeGreaterThanOrEqual(0);
    expect(calls.filter((c) => c === 'AssociateAddress')).toEqual([]);

    // Failback: the primary's idle look learned the address had gone, so it too moves at once.
    await waitFor('primary looked while BACKUP', async () =>
      (await logLines(primary)).some(
        (l) =>
          l.msg === 'fifo: looked where the addresses are while not MASTER' && l.stillHere === 0,
      )
        ? true
        : undefined,
    );
    await say(secondary, 'BACKUP');
    await say(primary, 'MASTER', 150);
    await waitFor('primary verified again', async () =>
      (await verifiedCount(primary)) === 2 ? 1 : undefined,
    );
    expect(await eipEni()).toBe(pair.world.primary.networkInterfaceId);
    const skipped = (await logLines(primary)).filter(
      (l) => l.msg === 'seen elsewhere since this node last held it: moving at once',
    );
    // Both of the primary's takeovers: after warm-up, and after its look while BACKUP.
    expect(skipped.length).toBe(2);

    // keepalived closes the FIFO when it stops: the process finishes and exits 0.
    await primary.writer?.close();
    primary.writer = undefined as never;
    expect(await primary.exited).toBe(0);
  });

  it('a burst is coalesced to its last state: the node ends BACKUP, and nothing is left half-done', async () => {
    const primary = await startFifo(pair.primary);
    await waitFor('warm', async () =>
      (await logLines(primary)).some((l) => l.msg === 'fifo: warm') ? true : undefined,
    );
    await env.emulator.resetLog();
    // Every transition in one write, as keepalived flapping within a millisecond would.
    const burst = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? 'INSTANCE "VI_EIP" MASTER 150' : 'INSTANCE "VI_EIP" BACKUP 150',
    );
    await primary.writer?.write(`${burst.join('\n')}\n`);
    await waitFor('20 transitions recorded', async () =>
      (await state(primary)).seq === 20 ? 1 : undefined,
    );
    const final = await state(primary);
    expect(final.vrrpState).toBe('BACKUP');
    await primary.writer?.close();
    primary.writer = undefined as never;
    expect(await primary.exited).toBe(0);
    const lines = await logLines(primary);
    const takeovers = lines.filter((l) => l.msg === 'step done' && l.step === 'identity');
    // Far fewer takeovers than MASTER lines: the loop acts only on the newest transition.
    expect(takeovers.length).toBeLessThanOrEqual(2);
    expect((await state(primary)).lastTakeover?.outcome ?? 'superseded').not.toBe('failed');
  });

  it('a later line stops a takeover in flight before its next step', async () => {
    const primary = await startFifo(pair.primary);
    await waitFor('warm', async () =>
      (await logLines(primary)).some((l) => l.msg === 'fifo: warm') ? true : undefined,
    );
    await env.emulator.injectFaults([{ action: 'AssignPrivateIpAddresses', latencyMs: 1_500 }]);
    await env.emulator.resetLog();
    await say(primary, 'MASTER', 150);
    await waitFor('assign in flight', async () =>
      (await logLines(primary)).some((l) => l.msg === 'transition recorded') ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 300));
    await say(primary, 'BACKUP', 150);
    await waitFor('superseded', async () =>
      (await state(primary)).lastTakeover?.outcome === 'superseded' ? true : undefined,
    );
    const calls = (await env.emulator.actions()).map((a) => a.action);
    expect(calls).not.toContain('AssociateAddress');
    expect((await state(primary)).vrrpState).toBe('BACKUP');
  });

  it('a storm: 50 transitions in 10 s on both nodes; the last one decides, takeovers never overlap', async () => {
    const primary = await startFifo(pair.primary);
    const secondary = await startFifo(pair.secondary);
    // The pair flaps: each step one node says MASTER and the other BACKUP, 25 steps 400 ms apart.
    for (let step = 0; step < 25; step++) {
      const [up, down] = step % 2 === 0 ? [primary, secondary] : [secondary, primary];
      await say(down, 'BACKUP');
      await say(up, 'MASTER');
      await new Promise((r) => setTimeout(r, 400));
    }
    // Step 24 (even) left the primary MASTER.
    await waitFor('both recorded all 25', async () =>
      (await state(primary)).seq === 25 && (await state(secondary)).seq === 25 ? 1 : undefined,
    );
    for (const node of [primary, secondary]) {
      await node.writer?.close();
      node.writer = undefined as never;
      expect(await node.exited).toBe(0);
    }
    expect(await eipEni()).toBe(pair.world.primary.networkInterfaceId);
    expect((await state(primary)).vrrpState).toBe('MASTER');
    expect((await state(primary)).lastTakeover).toMatchObject({ outcome: 'verified', seq: 25 });
    expect((await state(secondary)).vrrpState).toBe('BACKUP');
    // On each node, one takeover at a time: every takeover's log lines form one unbroken run.
    for (const node of [primary, secondary]) {
      const ids = (await logLines(node))
        .map((l) => l.failoverId)
        .filter((id): id is string => typeof id === 'string');
      const runs = ids.filter((id, i) => i === 0 || ids[i - 1] !== id);
      expect(new Set(runs).size).toBe(runs.length);
    }
  }, 30_000);

  it('refuses a path that is not a FIFO with exit 2 and one line saying how it is run', async () => {
    const file = `${pair.primary.stateDir}-not-a-fifo`;
    await writeFile(file, '');
    const child = spawn(
      process.execPath,
      [BUNDLE, 'fifo', '--allocation-id', pair.world.allocationId, file],
      {
        env: { PATH: process.env.PATH ?? '', NODE_NO_WARNINGS: '1', AWS_REGION: 'eu-central-1' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise<number>((done) => child.on('exit', (c) => done(c ?? -1)));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([
      expect.stringContaining('is not a FIFO; run this as keepalived'),
    ]);
  });
});
