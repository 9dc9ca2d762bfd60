// The fleet simulation (issue #7, "Scale"): many same-subnet pairs whose secondaries all take over
// at once, each as the built agent in its own process, against the EC2 emulator enforcing EC2's
// request token buckets. It measures, per retry mode, how long until every address is verified
// (by the harness's own DescribeAddresses), how many calls EC2 throttled, and how each agent ended.
//
//   npm run fleet -- [--pairs 50] [--reps 2] [--modes standard,adaptive]
//                    [--scenarios documented,drained] [--deadline 60] [--json FILE]
//
// Exits 1 when an invariant breaks: an address not verified, or an agent exiting non-zero before
// its deadline. Everything runs on loopback with fake credentials; it stops and cleans up by itself.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { RETRY_MODES, type RetryMode } from '../agent/src/retry-strategy.js';
import {
  type ActionRecord,
  EC2_DOCUMENTED_BUCKETS,
  type Emulator,
  startEmulator,
  TEST_REGION,
  type ThrottleConfig,
} from '../test/support/emulator.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from '../test/support/imds-stub.js';
import { createFleet, type Fleet, type FleetPair } from '../test/support/world.js';

const BUNDLE = resolve(import.meta.dirname, '../agent/dist/eip-failover.mjs');

/** What the account's buckets look like when the event starts. */
const SCENARIOS = {
  documented: {
    what: "EC2's documented buckets, full when the event starts",
    throttle: EC2_DOCUMENTED_BUCKETS,
  },
  drained: {
    what: "EC2's documented sizes and refill rates, each bucket at 10% when the event starts (the rest taken by everything else failing over in the same account)",
    throttle: drained(EC2_DOCUMENTED_BUCKETS, 0.1),
  },
} as const satisfies Record<string, { what: string; throttle: ThrottleConfig }>;
type ScenarioName = keyof typeof SCENARIOS;

function drained(config: ThrottleConfig, fraction: number): ThrottleConfig {
  const at = (spec: { capacity: number; refillPerSecond: number } | undefined) =>
    spec === undefined
      ? undefined
      : { ...spec, initialTokens: Math.floor(spec.capacity * fraction) };
  const actions = Object.fromEntries(
    Object.entries(config.actions ?? {}).map(([name, spec]) => [name, at(spec)]),
  );
  return {
    ...(config.mutating ? { mutating: at(config.mutating) } : {}),
    ...(config.nonMutating ? { nonMutating: at(config.nonMutating) } : {}),
    ...(config.unfilteredNonMutating
      ? { unfilteredNonMutating: at(config.unfilteredNonMutating) }
      : {}),
    actions,
  } as ThrottleConfig;
}

interface Options {
  readonly pairs: number;
  readonly reps: number;
  readonly modes: readonly RetryMode[];
  readonly scenarios: readonly ScenarioName[];
  readonly deadlineSeconds: number;
  readonly json: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      pairs: { type: 'string', default: '50' },
      reps: { type: 'string', default: '2' },
      modes: { type: 'string', default: RETRY_MODES.join(',') },
      scenarios: { type: 'string', default: Object.keys(SCENARIOS).join(',') },
      deadline: { type: 'string', default: '60' },
      json: { type: 'string' },
    },
  });
  const list = <T extends string>(raw: string, allowed: readonly T[], what: string): T[] => {
    const items = raw.split(',').filter(Boolean);
    for (const item of items) {
      if (!allowed.includes(item as T)) {
        throw new Error(`unknown ${what} "${item}"; use ${allowed.join(', ')}`);
      }
    }
    return items as T[];
  };
  const int = (raw: string, what: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${what} must be ${min}..${max}`);
    return n;
  };
  return {
    pairs: int(values.pairs, 'pairs', 1, 250),
    reps: int(values.reps, 'reps', 1, 10),
    modes: list(values.modes, RETRY_MODES, 'mode'),
    scenarios: list(values.scenarios, Object.keys(SCENARIOS) as ScenarioName[], 'scenario'),
    deadlineSeconds: int(values.deadline, 'deadline', 5, 300),
    json: values.json,
  };
}

/** Where every address and private IP is, read by the harness as an observer (not throttled). */
class Observer {
  private addresses = new Map<string, { eni: string; ip: string } | null>();
  private ips = new Map<string, string[]>();

  constructor(
    private readonly ec2: EC2Client,
    private readonly fleet: Fleet,
  ) {}

  async refresh(): Promise<void> {
    const [addresses, enis] = await Promise.all([
      this.ec2.send(
        new DescribeAddressesCommand({
          AllocationIds: this.fleet.pairs.map((p) => p.allocationId),
        }),
      ),
      this.ec2.send(
        new DescribeNetworkInterfacesCommand({
          Filters: [{ Name: 'vpc-id', Values: [this.fleet.vpcId] }],
        }),
      ),
    ]);
    this.addresses = new Map(
      (addresses.Addresses ?? []).map((a) => [
        a.AllocationId ?? '',
        a.NetworkInterfaceId && a.PrivateIpAddress
          ? { eni: a.NetworkInterfaceId, ip: a.PrivateIpAddress }
          : null,
      ]),
    );
    this.ips = new Map(
      (enis.NetworkInterfaces ?? []).map((n) => {
        const all = n.PrivateIpAddresses ?? [];
        const ordered = [...all.filter((p) => p.Primary), ...all.filter((p) => !p.Primary)];
        return [n.NetworkInterfaceId ?? '', ordered.flatMap((p) => p.PrivateIpAddress ?? [])];
      }),
    );
  }

  /** IMDS's local-ipv4s for an ENI, as of the last refresh. */
  localIpv4s(eni: string): string[] {
    return this.ips.get(eni) ?? [];
  }

  holds(pair: FleetPair, side: 'primary' | 'secondary'): boolean {
    const at = this.addresses.get(pair.allocationId);
    return (
      at?.eni === pair[side].networkInterfaceId &&
      at.ip === pair.vip &&
      this.localIpv4s(pair[side].networkInterfaceId).includes(pair.vip)
    );
  }
}

interface AgentResult {
  readonly pair: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly ms: number;
  readonly calls: number;
  readonly throttled: number;
  /** From the event until the emulator saw this agent's first EC2 request (process start-up). */
  readonly firstCallMs: number | null;
  readonly stderrTail: string;
}

interface RunResult {
  readonly scenario: ScenarioName;
  readonly mode: RetryMode;
  readonly rep: number;
  readonly verified: number;
  readonly allVerifiedMs: number | null;
  readonly calls: number;
  readonly throttled: number;
  readonly throttledMutating: number;
  /** Calls and throttled calls per EC2 action. */
  readonly byAction: Readonly<Record<string, { calls: number; throttled: number }>>;
  readonly agents: readonly AgentResult[];
  readonly failures: readonly string[];
  readonly loadAfter: number;
}

const accessKey = (pair: number) => `AKIDFLEET${String(pair).padStart(4, '0')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const opts = options();
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`);
  const dir = await mkdtemp(join(tmpdir(), 'eip-failover-fleet-'));
  const children = new Set<ChildProcess>();
  const stubs: ImdsStub[] = [];
  let emulator: Emulator | undefined;
  const clients: EC2Client[] = [];
  // The whole simulation's bound: every run has its own, this catches anything else.
  const overall = setTimeout(
    () => {
      process.stderr.write('fleet: overall time limit reached; stopping\n');
      for (const child of children) child.kill('SIGKILL');
      process.exit(1);
    },
    (opts.reps * opts.modes.length * opts.scenarios.length * (opts.deadlineSeconds + 45) + 180) *
      1000,
  );
  overall.unref();
  const stopAll = () => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    emulator = await startEmulator();
    const setup = emulator.client({ maxAttempts: 3 });
    const observerEc2 = emulator.observerClient();
    clients.push(setup, observerEc2);
    const started = Date.now();
    const fleet = await createFleet(setup, { pairs: opts.pairs });
    const observer = new Observer(observerEc2, fleet);
    await observer.refresh();
    for (const pair of fleet.pairs) {
      const node = pair.secondary;
      stubs.push(
        await startImdsStub({
          metadata: instanceMetadata(
            {
              instanceId: node.instanceId,
              region: TEST_REGION,
              availabilityZone: node.availabilityZone,
              macAddress: node.macAddress,
              networkInterfaceId: node.networkInterfaceId,
              vpcId: fleet.vpcId,
              subnetId: node.subnetId,
              subnetCidr: node.subnetCidr,
              primaryPrivateIp: node.privateIp,
            },
            () => observer.localIpv4s(node.networkInterfaceId),
          ),
        }),
      );
    }
    log(
      `fleet of ${opts.pairs} same-subnet pairs built in ${((Date.now() - started) / 1000).toFixed(1)} s; ${cpus().length} CPUs, load ${loadavg()[0]?.toFixed(2)}`,
    );

    const results: RunResult[] = [];
    let first = true;
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const scenario of opts.scenarios) {
        for (const mode of opts.modes) {
          await placeOnPrimaries(emulator, setup, observer, fleet, first);
          first = false;
          const result = await runOnce({
            emulator,
            observer,
            fleet,
            stubs,
            children,
            dir: join(dir, `${scenario}-${mode}-${rep}`),
            scenario,
            mode,
            rep,
            deadlineSeconds: opts.deadlineSeconds,
          });
          results.push(result);
          log(summaryLine(result));
        }
      }
    }
    process.stdout.write(`\n${report(results, opts)}\n`);
    if (opts.json !== undefined) await writeFile(opts.json, JSON.stringify(results, null, 2));
    const failures = results.flatMap((r) =>
      r.failures.map((f) => `${r.scenario}/${r.mode}/rep ${r.rep}: ${f}`),
    );
    if (failures.length > 0) {
      process.stderr.write(`fleet: invariants broken:\n${failures.join('\n')}\n`);
      return 1;
    }
    log('invariants held: every address verified, no agent gave up before its deadline');
    return 0;
  } finally {
    clearTimeout(overall);
    stopAll();
    await Promise.all(stubs.map((s) => s.close()));
    for (const client of clients) client.destroy();
    await emulator?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The state before the event: every VIP and EIP on its primary; set directly, not measured. */
async function placeOnPrimaries(
  emulator: Emulator,
  ec2: EC2Client,
  observer: Observer,
  fleet: Fleet,
  associate: boolean,
): Promise<void> {
  await emulator.setThrottle({});
  for (const pair of fleet.pairs) {
    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: pair.primary.networkInterfaceId,
        PrivateIpAddresses: [pair.vip],
        AllowReassignment: true,
      }),
    );
    // After the first time the EIP follows its private IP back (EC2 moves it with the IP).
    if (associate) {
      await ec2.send(
        new AssociateAddressCommand({
          AllocationId: pair.allocationId,
          NetworkInterfaceId: pair.primary.networkInterfaceId,
          PrivateIpAddress: pair.vip,
          AllowReassociation: true,
        }),
      );
    }
  }
  await observer.refresh();
  const misplaced = fleet.pairs.filter((p) => !observer.holds(p, 'primary'));
  if (misplaced.length > 0) {
    throw new Error(`setup: ${misplaced.length} pairs' addresses are not on their primary`);
  }
}

interface RunContext {
  readonly emulator: Emulator;
  readonly observer: Observer;
  readonly fleet: Fleet;
  readonly stubs: readonly ImdsStub[];
  readonly children: Set<ChildProcess>;
  readonly dir: string;
  readonly scenario: ScenarioName;
  readonly mode: RetryMode;
  readonly rep: number;
  readonly deadlineSeconds: number;
}

async function runOnce(ctx: RunContext): Promise<RunResult> {
  const { emulator, observer, fleet } = ctx;
  const configs: string[] = [];
  for (const pair of fleet.pairs) {
    const nodeDir = join(ctx.dir, `pair-${pair.index}`);
    await mkdir(nodeDir, { recursive: true });
    const config = join(nodeDir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        addresses: [{ allocationId: pair.allocationId, privateIp: pair.vip }],
        region: TEST_REGION,
        deadlineSeconds: ctx.deadlineSeconds,
        stateDir: join(nodeDir, 'state'),
        logFile: join(nodeDir, 'agent.log'),
        retryMode: ctx.mode,
      }),
    );
    configs.push(config);
  }
  await emulator.resetLog();
  await emulator.setThrottle(SCENARIOS[ctx.scenario].throttle);

  // The event: every secondary becomes MASTER at the same moment.
  const t0 = Date.now();
  const exits = fleet.pairs.map((pair, i) =>
    runAgent(ctx, pair, configs[i] ?? '', ctx.stubs[i]?.endpoint ?? '', t0),
  );
  const verifiedAt = new Map<number, number>();
  let running = true;
  const allExited = Promise.all(exits).finally(() => {
    running = false;
  });
  const limit = t0 + (ctx.deadlineSeconds + 20) * 1000;
  while (Date.now() < limit && (running || verifiedAt.size < fleet.pairs.length)) {
    await observer.refresh();
    for (const pair of fleet.pairs) {
      if (!verifiedAt.has(pair.index) && observer.holds(pair, 'secondary'))
        verifiedAt.set(pair.index, Date.now() - t0);
    }
    if (!running && verifiedAt.size < fleet.pairs.length) {
      // Every agent has ended: one more look after EC2's propagation, then stop.
      await sleep(1_000);
      await observer.refresh();
      for (const pair of fleet.pairs) {
        if (!verifiedAt.has(pair.index) && observer.holds(pair, 'secondary'))
          verifiedAt.set(pair.index, Date.now() - t0);
      }
      break;
    }
    await sleep(150);
  }
  for (const child of ctx.children) child.kill('SIGKILL');
  const ended = await allExited;
  await emulator.setThrottle({});
  const actions = await emulator.actions();
  return summarize(ctx, ended, actions, verifiedAt, t0);
}

interface Exit {
  readonly pair: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly ms: number;
  readonly stderrTail: string;
}

function runAgent(
  ctx: RunContext,
  pair: FleetPair,
  config: string,
  imds: string,
  t0: number,
): Promise<Exit> {
  return new Promise((done) => {
    // Niceness 10: each agent stands for a process on its own host, where IMDS (the hypervisor) and
    // EC2 (the emulator) do not compete with it for CPU; here 50 of them share this machine's cores
    // with the harness that serves their IMDS, so they yield to it.
    const child = spawn('nice', ['-n', '10', process.execPath, BUNDLE, 'takeover', '-c', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        AWS_ENDPOINT_URL_EC2: ctx.emulator.endpoint,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds,
        AWS_ACCESS_KEY_ID: accessKey(pair.index),
        AWS_SECRET_ACCESS_KEY: 'fleet-secret-not-real',
        AWS_REGION: TEST_REGION,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        NODE_NO_WARNINGS: '1',
      },
    });
    ctx.children.add(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-2_000);
    });
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code, signal) => {
      ctx.children.delete(child);
      done({ pair: pair.index, code, signal, ms: Date.now() - t0, stderrTail: stderr.trim() });
    });
  });
}

function summarize(
  ctx: RunContext,
  exits: readonly Exit[],
  actions: readonly ActionRecord[],
  verifiedAt: Map<number, number>,
  t0: number,
): RunResult {
  const agents = exits.map((exit): AgentResult => {
    const mine = actions.filter((a) => a.accessKeyId === accessKey(exit.pair));
    const firstAt = mine[0] ? Date.parse(mine[0].startedAt) - t0 : null;
    return {
      ...exit,
      calls: mine.length,
      throttled: mine.filter((a) => a.fault === 'bucket').length,
      firstCallMs: firstAt,
    };
  });
  const failures: string[] = [];
  const deadlineMs = ctx.deadlineSeconds * 1000;
  for (const pair of ctx.fleet.pairs) {
    if (!verifiedAt.has(pair.index)) failures.push(`pair ${pair.index}: address not verified`);
  }
  for (const agent of agents) {
    if (agent.code !== 0 && agent.ms < deadlineMs) {
      failures.push(
        `pair ${agent.pair}: agent exited ${agent.code ?? agent.signal} after ${(agent.ms / 1000).toFixed(1)} s, before its ${ctx.deadlineSeconds} s deadline: ${agent.stderrTail.split('\n').at(-1) ?? ''}`,
      );
    }
  }
  const throttledRecords = actions.filter((a) => a.fault === 'bucket');
  const byAction: Record<string, { calls: number; throttled: number }> = {};
  for (const a of actions) {
    const entry = byAction[a.action] ?? { calls: 0, throttled: 0 };
    byAction[a.action] = entry;
    entry.calls += 1;
    if (a.fault === 'bucket') entry.throttled += 1;
  }
  return {
    scenario: ctx.scenario,
    mode: ctx.mode,
    rep: ctx.rep,
    verified: verifiedAt.size,
    allVerifiedMs:
      verifiedAt.size === ctx.fleet.pairs.length ? Math.max(...verifiedAt.values()) : null,
    calls: actions.length,
    throttled: throttledRecords.length,
    throttledMutating: throttledRecords.filter((a) => a.mutating).length,
    byAction,
    agents,
    failures,
    loadAfter: loadavg()[0] ?? 0,
  };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}
const s = (ms: number | null) => (ms === null || Number.isNaN(ms) ? '—' : (ms / 1000).toFixed(1));

function summaryLine(r: RunResult): string {
  const ok = r.agents.filter((a) => a.code === 0).length;
  return `${r.scenario}/${r.mode} rep ${r.rep}: ${r.verified}/${r.agents.length} verified, all in ${s(r.allVerifiedMs)} s; ${r.throttled} of ${r.calls} calls throttled; exits 0: ${ok}/${r.agents.length}; agent p50/p90/max ${s(quantile(msOf(r), 0.5))}/${s(quantile(msOf(r), 0.9))}/${s(quantile(msOf(r), 1))} s`;
}
const msOf = (r: RunResult) => r.agents.map((a) => a.ms);

function report(results: readonly RunResult[], opts: Options): string {
  const lines: string[] = [];
  lines.push(
    `Fleet: ${opts.pairs} same-subnet pairs, every secondary takes over at once; deadline ${opts.deadlineSeconds} s; ${opts.reps} run(s) per scenario and mode; ${cpus().length} CPUs.`,
    '',
  );
  for (const name of opts.scenarios) lines.push(`- ${name}: ${SCENARIOS[name].what}`);
  lines.push(
    '',
    '| scenario | mode | run | verified | all verified (s) | throttled / calls | throttled mutating | calls per agent p50 / max | exit 0 | gave up early | agent time p50 / p90 / max (s) | first call p50 / max (s) | first call to exit p50 / p90 / max (s) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of results) {
    const calls = r.agents.map((a) => a.calls);
    const first = r.agents.flatMap((a) => (a.firstCallMs === null ? [] : [a.firstCallMs]));
    const early = r.agents.filter((a) => a.code !== 0 && a.ms < opts.deadlineSeconds * 1000);
    // The part EC2 decides: from the agent's first request to its exit (start-up is CPU).
    const ec2 = r.agents.flatMap((a) => (a.firstCallMs === null ? [] : [a.ms - a.firstCallMs]));
    lines.push(
      `| ${r.scenario} | ${r.mode} | ${r.rep} | ${r.verified}/${r.agents.length} | ${s(r.allVerifiedMs)} | ${r.throttled} / ${r.calls} | ${r.throttledMutating} | ${quantile(calls, 0.5)} / ${quantile(calls, 1)} | ${r.agents.filter((a) => a.code === 0).length} | ${early.length} | ${s(quantile(msOf(r), 0.5))} / ${s(quantile(msOf(r), 0.9))} / ${s(quantile(msOf(r), 1))} | ${s(quantile(first, 0.5))} / ${s(quantile(first, 1))} | ${s(quantile(ec2, 0.5))} / ${s(quantile(ec2, 0.9))} / ${s(quantile(ec2, 1))} |`,
    );
  }
  lines.push(
    '',
    'Throttled / calls per action, all runs of each scenario and mode together:',
    '',
    '| scenario | mode | action | throttled / calls |',
    '|---|---|---|---|',
  );
  for (const scenario of opts.scenarios) {
    for (const mode of opts.modes) {
      const runs = results.filter((r) => r.scenario === scenario && r.mode === mode);
      const names = [...new Set(runs.flatMap((r) => Object.keys(r.byAction)))].sort();
      for (const name of names) {
        const calls = runs.reduce((n, r) => n + (r.byAction[name]?.calls ?? 0), 0);
        const throttled = runs.reduce((n, r) => n + (r.byAction[name]?.throttled ?? 0), 0);
        lines.push(`| ${scenario} | ${mode} | ${name} | ${throttled} / ${calls} |`);
      }
    }
  }
  lines.push(
    '',
    'Mean over runs:',
    '',
    '| scenario | mode | runs | all verified (s) | throttled calls | calls | agent time p90 (s) | agents failed |',
    '|---|---|---|---|---|---|---|---|',
  );
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const scenario of opts.scenarios) {
    for (const mode of opts.modes) {
      const runs = results.filter((r) => r.scenario === scenario && r.mode === mode);
      if (runs.length === 0) continue;
      const verified = runs.flatMap((r) => (r.allVerifiedMs === null ? [] : [r.allVerifiedMs]));
      lines.push(
        `| ${scenario} | ${mode} | ${runs.length} | ${verified.length === runs.length ? s(mean(verified)) : `${s(mean(verified))} (${runs.length - verified.length} incomplete)`} | ${mean(runs.map((r) => r.throttled)).toFixed(1)} | ${mean(runs.map((r) => r.calls)).toFixed(1)} | ${s(mean(runs.map((r) => quantile(msOf(r), 0.9))))} | ${runs.reduce((n, r) => n + r.agents.filter((a) => a.code !== 0).length, 0)} |`,
      );
    }
  }
  return lines.join('\n');
}

function log(text: string): void {
  process.stderr.write(`[fleet ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `fleet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
