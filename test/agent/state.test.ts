import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Ec2Gateway } from '../../agent/src/ec2.js';
import { systemClock } from '../../agent/src/retry.js';
import { StateStore } from '../../agent/src/state.js';
import {
  ALLOCATION_ID,
  defaultConfig,
  fakeImds,
  runAgent,
  THIS_NODE,
  useAgentFixture,
  VIP,
} from './harness.js';

const t = useAgentFixture();

/** A gateway over the shared t.world that tags each call with its run, slowed down so runs overlap. */
function taggedGateway(tag: string, trace: string[]): Ec2Gateway {
  const slow = () => new Promise((r) => setTimeout(r, 15));
  const gw = (): Ec2Gateway => ({
    describeAddresses: async (ids) => {
      trace.push(`${tag}:describe`);
      await slow();
      const a = t.world.association;
      return ids.map((id) => ({
        allocationId: id,
        publicIp: '203.0.113.7',
        association: a
          ? { networkInterfaceId: a.eni, instanceId: null, privateIpAddress: a.ip }
          : null,
      }));
    },
    findPrivateIpHolder: async (_vpc, ip) => {
      trace.push(`${tag}:holder`);
      await slow();
      return t.world.ips.get(ip) ?? null;
    },
    describeNetworkInterface: async () => {
      throw new Error('not used');
    },
    assignPrivateIp: async (eni, ip) => {
      trace.push(`${tag}:assign`);
      await slow();
      t.world.ips.set(ip, eni);
    },
    associateAddress: async (_id, eni, ip) => {
      trace.push(`${tag}:associate`);
      await slow();
      t.world.association = { eni, ip };
    },
    dryRunAssociate: async () => ({ permitted: true }),
  });
  return gw();
}

describe('concurrency and the state dir', () => {
  it('two concurrent takeovers never interleave their EC2 calls; the newer one wins', async () => {
    const trace: string[] = [];
    const run = (tag: string) =>
      runAgent(['takeover', '-c', t.sandbox.configPath], {
        imds: fakeImds(t.world),
        clock: systemClock,
        ec2: taggedGateway(tag, trace),
      });
    // A starts; once its first EC2 call is under way, B (a newer MASTER transition) starts.
    const a = run('A');
    while (!trace.some((t) => t.startsWith('A:'))) await new Promise((r) => setTimeout(r, 2));
    const b = run('B');
    const [ra, rb] = await Promise.all([a, b]);
    // Each run's calls form one contiguous block.
    const order = trace.map((t) => t.split(':')[0]);
    const switches = order.filter((tag, i) => i > 0 && tag !== order[i - 1]).length;
    expect(switches).toBeLessThanOrEqual(1);
    expect(ra.code).toBe(3);
    expect(rb.code).toBe(0);
    expect(
      trace.filter((t) => t.startsWith('A:')).some((t) => t === 'A:assign' || t === 'A:associate'),
    ).toBe(false);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
    // Nothing stays locked behind them.
    await expect(stat(join(t.sandbox.stateDir, 'takeover.lock'))).rejects.toThrow(/ENOENT/);
  });

  it('a lock left by a dead process is recovered', async () => {
    await mkdir(t.sandbox.stateDir, { recursive: true });
    await writeFile(
      join(t.sandbox.stateDir, 'takeover.lock'),
      JSON.stringify({ pid: 2 ** 22 + 1, token: 'dead', acquiredAt: Date.now() }),
    );
    const result = await runAgent(['takeover', '-c', t.sandbox.configPath], {
      imds: fakeImds(t.world),
      clock: systemClock,
    });
    expect(result.code).toBe(0);
  });

  it('a lock older than any legitimate holder is recovered even if its pid is alive', async () => {
    await mkdir(t.sandbox.stateDir, { recursive: true });
    await writeFile(
      join(t.sandbox.stateDir, 'takeover.lock'),
      JSON.stringify({ pid: process.pid, token: 'hung', acquiredAt: Date.now() - 10 * 60_000 }),
    );
    const result = await runAgent(['takeover', '-c', t.sandbox.configPath], {
      imds: fakeImds(t.world),
      clock: systemClock,
    });
    expect(result.code).toBe(0);
  });

  it('sequence numbers increase by one per recorded transition, also under concurrency', async () => {
    const store = new StateStore(t.sandbox.stateDir, systemClock);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.recordTransition(i % 2 ? 'BACKUP' : 'MASTER')),
    );
    expect((await store.read()).seq).toBe(10);
  });

  it('a torn state file reads as UNKNOWN instead of crashing', async () => {
    await mkdir(t.sandbox.stateDir, { recursive: true });
    await writeFile(join(t.sandbox.stateDir, 'state.json'), '{"seq": 4, "vrrpSt');
    expect((await new StateStore(t.sandbox.stateDir, systemClock).read()).vrrpState).toBe(
      'UNKNOWN',
    );
  });

  it('--log-file appends JSON lines, creates the directory, mode 0640', async () => {
    const logFile = join(t.sandbox.dir, 'log', 'agent.log');
    await t.sandbox.writeConfig(defaultConfig(t.sandbox, { logFile }));
    for (let i = 0; i < 2; i++) {
      const { run } = await import('../../agent/src/cli.js');
      const code = await run(['release', '-c', t.sandbox.configPath], {
        env: {},
        stdout: () => {},
        stderr: () => {},
      });
      expect(code).toBe(0);
    }
    const lines = (await readFile(logFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 'info',
      name: 'eip-failover',
      command: 'release',
      vrrpState: 'BACKUP',
    });
    expect((await stat(logFile)).mode & 0o777).toBe(0o640);
  });

  it('credentials never reach the log', async () => {
    const result = await runAgent(['takeover', '-c', t.sandbox.configPath], {
      imds: fakeImds(t.world),
      clock: systemClock,
      env: { AWS_ACCESS_KEY_ID: 'AKIDSECRETCANARY', AWS_SECRET_ACCESS_KEY: 'canary-secret-value' },
    });
    expect(result.code).toBe(0);
    const text = JSON.stringify(result.logs);
    expect(text).not.toContain('canary-secret-value');
    expect(text).not.toContain('AKIDSECRETCANARY');
    expect(ALLOCATION_ID).toBeTruthy();
  });
});

describe('file ownership and unusable files', () => {
  // These run as root, as keepalived's hooks' files are only at risk when root writes them (CI is root).
  const asRoot = process.getuid?.() === 0;
  const NOBODY = 65534;

  it.runIf(asRoot)(
    'a run as root keeps state, lock and log files owned by the state dir’s user',
    async () => {
      const { chown } = await import('node:fs/promises');
      await mkdir(t.sandbox.stateDir, { recursive: true });
      await chown(t.sandbox.stateDir, NOBODY, NOBODY);
      const logDir = join(t.sandbox.dir, 'log');
      await mkdir(logDir);
      await chown(logDir, NOBODY, NOBODY);
      await t.sandbox.writeConfig(defaultConfig(t.sandbox, { logFile: join(logDir, 'agent.log') }));
      const { run } = await import('../../agent/src/cli.js');
      expect(
        await run(['release', '-c', t.sandbox.configPath], {
          env: {},
          stdout: () => {},
          stderr: () => {},
        }),
      ).toBe(0);
      expect((await stat(join(t.sandbox.stateDir, 'state.json'))).uid).toBe(NOBODY);
      expect((await stat(join(logDir, 'agent.log'))).uid).toBe(NOBODY);
    },
  );

  it('a log file that cannot be opened does not stop a takeover', async () => {
    // A directory where the log file should be: open fails for any user.
    const logFile = join(t.sandbox.dir, 'is-a-directory');
    await mkdir(logFile);
    await t.sandbox.writeConfig(defaultConfig(t.sandbox, { logFile }));
    const { run } = await import('../../agent/src/cli.js');
    const code = await run(['takeover', '-c', t.sandbox.configPath], {
      env: { AWS_ACCESS_KEY_ID: 'AKIDTESTONLY', AWS_SECRET_ACCESS_KEY: 'test-secret-only' },
      stdout: () => {},
      stderr: () => {},
      imds: fakeImds(t.world),
      clock: systemClock,
    });
    expect(code).toBe(0);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
  });

  it('status says why when the state file cannot be read, and exits 4', async () => {
    await mkdir(join(t.sandbox.stateDir, 'state.json'), { recursive: true });
    const result = await runAgent(['status', '--json', '-c', t.sandbox.configPath], {
      imds: fakeImds(t.world),
      clock: systemClock,
    });
    expect(result.code).toBe(4);
    expect(JSON.parse(result.stdout).problems[0]).toMatch(
      /cannot read .*state\.json \(EISDIR\); run as root or as keepalived's script user/,
    );
  });
});
