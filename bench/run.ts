/**
 * `npm run bench`: how long a failover takes, for four ways of making it, against the project's
 * EC2 emulator and IMDS stubs on this machine (issue #8). Every run is a real move of the VIP and
 * the Elastic IP from one node to the other, checked from outside after the run.
 *
 *   npm run bench [-- --runs N] [--latencies 0,50] [--rss-runs K] [--startup-runs M]
 *                 [--out bench/RESULTS.md] [--json]
 *
 * Variants: shell (bash + curl + AWS CLI v1, bench/shell-hook.sh), one-shot (`eip-failover
 * takeover` as a fresh process), warm (`eip-failover fifo` reading keepalived's notify FIFO),
 * floor (three SDK calls back to back in this process). Rounds are paired: each round runs every
 * variant once, in an order that rotates, so ratios compare runs taken moments apart.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  type BenchNode,
  BUNDLE,
  cleanup,
  expectHeldBy,
  FAKE_CREDENTIALS,
  fmtMs,
  installExitGuards,
  median,
  type Pair,
  quantile,
  REGION,
  ROOT,
  resolveAwsCli,
  runProcess,
  startPair,
  table,
} from './harness.js';
import { measureStartup, renderStartup, type StartupReport } from './startup.js';
import { hasFifoCommand, WarmAgent } from './warm.js';

const SHELL_HOOK = join(ROOT, 'bench/shell-hook.sh');
const GNU_TIME = '/usr/bin/time';

const GOALS = {
  oneShotOverShell: 0.15,
  oneShotRssMiB: 90,
  warmOverFloor: 1.2,
} as const;

interface Options {
  runs: number;
  latencies: number[];
  rssRuns: number;
  startupRuns: number;
  out: string;
  json: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '15' },
      latencies: { type: 'string', default: '0,50' },
      'rss-runs': { type: 'string' },
      'startup-runs': { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'bench/RESULTS.md') },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  const int = (text: string, what: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${what} takes an integer ≥ ${min}`);
    return n;
  };
  const runs = int(values.runs, 'runs', 1);
  return {
    runs,
    latencies: values.latencies.split(',').map((l) => int(l.trim(), 'latencies', 0)),
    rssRuns: int(values['rss-runs'] ?? String(Math.min(5, runs)), 'rss-runs', 0),
    startupRuns: int(values['startup-runs'] ?? String(runs), 'startup-runs', 0),
    out: values.out,
    json: values.json,
  };
}

// ------------------------------------------------------------------------------------------------
// Variants: each makes one real move to `target` and says how long it took.

interface Variant {
  readonly name: string;
  /** One process per move: peak RSS measured in separate runs under GNU time. */
  readonly rss?: (target: BenchNode) => Promise<number>;
  move(target: BenchNode): Promise<number>;
  /** Untimed, after a checked move: what keepalived does on the node that lost. */
  after?(target: BenchNode, from: BenchNode): Promise<void>;
  /** Peak RSS of long-lived processes, KiB. */
  peakRss?(): number | undefined;
  /** What observing the end of a move adds to the figure, per move, ms. */
  watchLagMs?(): number[];
}

function failed(what: string, run: { code: number | null; signal: string | null; stderr: string }) {
  return new Error(
    `${what} exited with code ${run.code} (signal ${run.signal})\n${run.stderr.slice(-2_000)}`,
  );
}

/** GNU time writes the peak RSS (KiB) of the command and its waited-for children to a file. */
async function underTime(
  file: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<number> {
  const run = await runProcess(GNU_TIME, ['-f', '%M', '-o', file, command, ...args], env);
  if (run.code !== 0) throw failed(what, run);
  const kib = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
  if (!Number.isFinite(kib)) throw new Error(`${what}: GNU time wrote no RSS to ${file}`);
  return kib;
}

function shellVariant(pair: Pair): Variant {
  const awsCli = resolveAwsCli();
  const env = (target: BenchNode) =>
    pair.env(target, {
      AWS_CLI: awsCli,
      EIP_ALLOCATION_ID: pair.world.allocationId,
      VIP: pair.vip,
      // No instance-metadata lookups by the CLI itself (credentials and region are in the env).
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_PAGER: '',
    });
  return {
    name: 'shell',
    async move(target) {
      const run = await runProcess('bash', [SHELL_HOOK], env(target));
      if (run.code !== 0) throw failed('shell hook', run);
      return run.wallMs;
    },
    rss: (target) =>
      underTime(
        join(pair.dir, 'shell.rss'),
        'bash',
        [SHELL_HOOK],
        env(target),
        'shell hook under GNU time',
      ),
  };
}

function oneShotVariant(pair: Pair): Variant & { prepare(): Promise<void> } {
  const files = new Map(pair.nodes.map((n) => [n, pair.agentConfig(n, 'oneshot')]));
  const args = (node: BenchNode, command: string[]) => {
    const f = files.get(node);
    if (!f) throw new Error('no config');
    return [BUNDLE, ...command, '--config', f.config, '--log-file', f.log];
  };
  const release = async (node: BenchNode) => {
    const run = await runProcess(
      process.execPath,
      args(node, ['release', 'BACKUP']),
      pair.env(node),
    );
    if (run.code !== 0) throw failed('eip-failover release', run);
  };
  return {
    name: 'one-shot',
    // Both nodes start as keepalived leaves a BACKUP: `release BACKUP` recorded in the state dir.
    prepare: async () => {
      for (const n of pair.nodes) await release(n);
    },
    async move(target) {
      const run = await runProcess(process.execPath, args(target, ['takeover']), pair.env(target));
      if (run.code !== 0) throw failed('eip-failover takeover', run);
      return run.wallMs;
    },
    // keepalived on the node that lost runs notify_backup: this node's next takeover starts there.
    after: (_target, from) => release(from),
    rss: (target) =>
      underTime(
        join(pair.dir, 'oneshot.rss'),
        process.execPath,
        args(target, ['takeover']),
        pair.env(target),
        'eip-failover takeover under GNU time',
      ),
  };
}

async function warmVariant(pair: Pair): Promise<Variant & { stop(): Promise<void> }> {
  const agents = new Map<BenchNode, WarmAgent>();
  for (const node of pair.nodes) {
    const agent = await WarmAgent.start(pair, node);
    agents.set(node, agent);
    await agent.release();
  }
  const of = (node: BenchNode) => {
    const a = agents.get(node);
    if (!a) throw new Error('no warm agent');
    return a;
  };
  return {
    name: 'warm',
    move: (target) => of(target).takeover(),
    after: (_target, from) => of(from).release(),
    watchLagMs: () => [...agents.values()].flatMap((a) => a.watchLagMs),
    peakRss: () => {
      const peaks = [...agents.values()].flatMap((a) => a.peakRssKiB() ?? []);
      return peaks.length > 0 ? Math.max(...peaks) : undefined;
    },
    stop: async () => {
      for (const a of agents.values()) {
        const { code, signal } = await a.stop();
        if (code !== 0) {
          throw new Error(
            `warm agent on node ${a.node.name} did not exit 0 on EOF (code ${code}, signal ${signal})`,
          );
        }
      }
    },
  };
}

function floorVariant(pair: Pair): Variant & { prepare(): Promise<void>; stop(): void } {
  const client = new EC2Client({
    endpoint: pair.emulator.endpoint,
    region: REGION,
    credentials: {
      accessKeyId: FAKE_CREDENTIALS.AWS_ACCESS_KEY_ID,
      secretAccessKey: FAKE_CREDENTIALS.AWS_SECRET_ACCESS_KEY,
    },
    maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true }) },
  });
  const describe = () =>
    client.send(new DescribeAddressesCommand({ AllocationIds: [pair.world.allocationId] }));
  return {
    name: 'floor',
    // Client built, credentials resolved, connection open: none of it is timed.
    prepare: async () => {
      await describe();
    },
    async move(target) {
      const eni = target.world.networkInterfaceId;
      const started = performance.now();
      await client.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: eni,
          PrivateIpAddresses: [pair.vip],
          AllowReassignment: true,
        }),
      );
      await client.send(
        new AssociateAddressCommand({
          AllocationId: pair.world.allocationId,
          NetworkInterfaceId: eni,
          PrivateIpAddress: pair.vip,
          AllowReassociation: true,
        }),
      );
      const seen = await describe();
      const wall = performance.now() - started;
      if (seen.Addresses?.[0]?.NetworkInterfaceId !== eni) {
        throw new Error(`floor: DescribeAddresses does not show the EIP on ${eni}`);
      }
      return wall;
    },
    stop: () => client.destroy(),
  };
}

// ------------------------------------------------------------------------------------------------
// Rounds.

interface Sample {
  readonly round: number;
  readonly wallMs: number;
  /** EC2 calls the variant sent for this move (the emulator's log, the harness's own left out). */
  readonly calls: number;
}

interface VariantResult {
  readonly name: string;
  readonly samples: Sample[];
  readonly rssKiB: number[];
}

interface LatencyResult {
  readonly latencyMs: number;
  readonly variants: VariantResult[];
}

async function moveOnce(
  pair: Pair,
  variant: Variant,
  latencyMs: number,
): Promise<{ wallMs: number; calls: number }> {
  const from = await pair.holder();
  if (from === null) throw new Error('the addresses are not together on one node before a run');
  const target = pair.other(from);
  await pair.emulator.resetLog();
  const wallMs = await variant.move(target);
  const calls = await pair.clientActions();
  await expectHeldBy(pair, target, `${variant.name} (to node ${target.name})`);
  const undelayed = calls.filter((c) => c.durationMs < latencyMs - 1);
  if (undelayed.length > 0) {
    throw new Error(
      `injected latency of ${latencyMs} ms missing on ${undelayed.map((c) => `${c.action} (${c.durationMs} ms)`).join(', ')}`,
    );
  }
  await variant.after?.(target, from);
  return { wallMs, calls: calls.length };
}

async function rssOnce(pair: Pair, variant: Variant): Promise<number> {
  const from = await pair.holder();
  if (from === null || !variant.rss) throw new Error('no holder or no RSS measurement');
  const target = pair.other(from);
  const kib = await variant.rss(target);
  await expectHeldBy(pair, target, `${variant.name} under GNU time (to node ${target.name})`);
  await variant.after?.(target, from);
  return kib;
}

async function runLatency(
  pair: Pair,
  variants: readonly Variant[],
  latencyMs: number,
  opts: Options,
  progress: (text: string) => void,
): Promise<LatencyResult> {
  await pair.emulator.resetFaults();
  if (latencyMs > 0) await pair.emulator.injectFaults({ action: '*', latencyMs });
  const results = new Map<Variant, VariantResult>(
    variants.map((v) => [v, { name: v.name, samples: [], rssKiB: [] }]),
  );
  const resultOf = (v: Variant): VariantResult => {
    const r = results.get(v);
    if (!r) throw new Error(`no result for ${v.name}`);
    return r;
  };
  // One untimed move per variant (two for warm: one per node) warms caches, moto and connections.
  for (const v of variants) {
    await moveOnce(pair, v, latencyMs);
    if (v.name === 'warm') await moveOnce(pair, v, latencyMs);
  }
  for (let round = 0; round < opts.runs; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length] as Variant);
    for (const v of order) {
      const { wallMs, calls } = await moveOnce(pair, v, latencyMs);
      resultOf(v).samples.push({ round, wallMs, calls });
    }
    progress(`  ${latencyMs} ms: round ${round + 1}/${opts.runs}`);
  }
  for (let i = 0; i < opts.rssRuns; i++) {
    for (const v of variants) {
      if (v.rss) resultOf(v).rssKiB.push(await rssOnce(pair, v));
    }
  }
  for (const v of variants) {
    const peak = v.peakRss?.();
    if (peak !== undefined) resultOf(v).rssKiB.push(peak);
  }
  await pair.emulator.resetFaults();
  return { latencyMs, variants: [...results.values()] };
}

// ------------------------------------------------------------------------------------------------
// Report.

/** Median over rounds of (a / b) within the same round: paired, so drift between rounds cancels. */
function pairedRatio(a: VariantResult | undefined, b: VariantResult | undefined): number {
  if (!a || !b) return Number.NaN;
  const byRound = new Map(b.samples.map((s) => [s.round, s.wallMs]));
  const ratios = a.samples.flatMap((s) => {
    const other = byRound.get(s.round);
    return other ? [s.wallMs / other] : [];
  });
  return median(ratios);
}

const fmtRatio = (r: number, digits = 2) => (Number.isNaN(r) ? '—' : `${r.toFixed(digits)}×`);
const fmtMiB = (kib: number) => (Number.isNaN(kib) ? '—' : `${(kib / 1024).toFixed(1)} MiB`);

interface Goal {
  readonly text: string;
  readonly value: number;
  readonly limit: number;
  readonly shown: string;
}

function goals(results: readonly LatencyResult[]): Goal[] {
  const at = (ms: number) => results.find((r) => r.latencyMs === ms);
  const v = (r: LatencyResult | undefined, name: string) =>
    r?.variants.find((x) => x.name === name);
  const oneShotShell = pairedRatio(v(at(0), 'one-shot'), v(at(0), 'shell'));
  const rss = median(results.flatMap((r) => v(r, 'one-shot')?.rssKiB ?? []));
  const warmFloor = pairedRatio(v(at(50), 'warm'), v(at(50), 'floor'));
  return [
    {
      text: `one-shot / shell median wall at 0 ms ≤ ${GOALS.oneShotOverShell}`,
      value: oneShotShell,
      limit: GOALS.oneShotOverShell,
      shown: fmtRatio(oneShotShell, 3),
    },
    {
      text: `one-shot peak RSS ≤ ${GOALS.oneShotRssMiB} MiB`,
      value: rss / 1024,
      limit: GOALS.oneShotRssMiB,
      shown: fmtMiB(rss),
    },
    {
      text: `warm / floor median at 50 ms ≤ ${GOALS.warmOverFloor}`,
      value: warmFloor,
      limit: GOALS.warmOverFloor,
      shown: fmtRatio(warmFloor, 3),
    },
  ];
}

function renderLatency(r: LatencyResult, warmNote: string | null): string {
  const find = (name: string) => r.variants.find((x) => x.name === name);
  const rows = ['shell', 'one-shot', 'warm', 'floor'].map((name) => {
    const v = find(name);
    if (!v) return [name, warmNote ?? 'n/a', '', '', '', '', '', ''];
    const walls = v.samples.map((s) => s.wallMs);
    return [
      name,
      fmtMs(median(walls)),
      `${fmtMs(quantile(walls, 0.1))} – ${fmtMs(quantile(walls, 0.9))}`,
      v.rssKiB.length > 0 ? fmtMiB(median(v.rssKiB)) : '—',
      name === 'shell' ? '1' : fmtRatio(pairedRatio(v, find('shell'))),
      name === 'floor' ? '1' : fmtRatio(pairedRatio(v, find('floor'))),
      String(median(v.samples.map((s) => s.calls))),
      String(walls.length),
    ];
  });
  return `### ${r.latencyMs} ms injected latency per EC2 call\n\n${table(
    ['variant', 'median wall', 'p10 – p90', 'peak RSS', '× shell', '× floor', 'EC2 calls', 'runs'],
    rows,
  )}`;
}

function renderGoals(list: readonly Goal[]): string {
  return table(
    ['goal', 'measured', 'verdict'],
    list.map((g) => [
      g.text,
      g.shown,
      Number.isNaN(g.value) ? 'n/a' : g.value <= g.limit ? 'PASS' : 'FAIL',
    ]),
  );
}

const METHOD = `Method: every run is a real move of the VIP and the Elastic IP to the node that does not hold
them (targets alternate), checked afterwards with DescribeAddresses and DescribeNetworkInterfaces;
a run that did not move fails the benchmark. Each round runs every variant once, in an order that
rotates from round to round; "× shell" and "× floor" are medians of the per-round ratios. Wall
times: spawn → exit for processes; MASTER line written to the FIFO → the agent's "takeover
verified" log line read (inotify on its --log-file) for warm; the three calls for floor. Peak RSS:
GNU time (%M) in separate runs, so its wrapper is not in the wall times; for warm, the agents'
VmHWM. "EC2 calls": median count of EC2 requests the variant sent per move. Latency is the
emulator's fault rule {action: '*', latencyMs}, applied per EC2 call and checked on every call;
the IMDS stubs' and the harness's own EC2 reads are exempt from it. Before each one-shot takeover
the node's state dir holds the \`release BACKUP\` keepalived's notify_backup recorded; the warm
agent on the node that lost gets the BACKUP line after each warm move.`;

async function main(): Promise<void> {
  const opts = options();
  installExitGuards(15 * 60_000);
  const progress = (text: string) => process.stderr.write(`${text}\n`);
  const startedAt = new Date();

  progress('bench: starting the EC2 emulator and the IMDS stubs');
  const pair = await startPair();
  const oneShot = oneShotVariant(pair);
  const floor = floorVariant(pair);
  await oneShot.prepare();
  await floor.prepare();
  const variants: Variant[] = [shellVariant(pair), oneShot];
  let warm: Awaited<ReturnType<typeof warmVariant>> | undefined;
  let warmNote: string | null = null;
  if (await hasFifoCommand(pair.env(pair.nodes[0]))) {
    warm = await warmVariant(pair);
    variants.push(warm);
  } else {
    warmNote = 'n/a (fifo command missing)';
    progress(`bench: warm: ${warmNote}`);
  }
  variants.push(floor);

  const results: LatencyResult[] = [];
  for (const latencyMs of opts.latencies) {
    progress(`bench: ${latencyMs} ms latency, ${opts.runs} rounds of ${variants.length} moves`);
    results.push(await runLatency(pair, variants, latencyMs, opts, progress));
  }
  await warm?.stop();
  floor.stop();

  let startup: StartupReport | undefined;
  if (opts.startupRuns > 0) {
    progress(`bench: start-up, ${opts.startupRuns} runs`);
    startup = await measureStartup(pair, opts.startupRuns);
  }
  await cleanup();

  const goalList = goals(results);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, '');
  const header = [
    `# Benchmark results`,
    '',
    `- date: ${startedAt.toISOString()}`,
    `- machine: ${cpus().length} CPUs (\`nproc\`), ${cpu}, Linux; Node ${process.version}`,
    `- bundle: ${relative(ROOT, BUNDLE)}`,
    `- command: \`${command}\``,
    `- rounds per latency: ${opts.runs}; RSS runs: ${opts.rssRuns}; start-up runs: ${opts.startupRuns}`,
    '',
    'The machine is shared and noisy: compare ratios within one invocation, never absolute times',
    'from different runs.',
    '',
  ].join('\n');
  const body = [
    ...results.map((r) => renderLatency(r, warmNote)),
    `### Goals (issue #8)\n\n${renderGoals(goalList)}`,
    ...(startup ? [renderStartup(startup)] : []),
    METHOD,
    ...(warm
      ? [
          `Watching the warm agent's log added a median of ${fmtMs(median(warm.watchLagMs?.() ?? []))} per move (bench read time − the line's own timestamp, which has 1 ms resolution).`,
        ]
      : []),
  ].join('\n');
  const markdown = `${header}\n${body}\n`;
  writeFileSync(opts.out, markdown);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ startedAt, options: opts, results, goals: goalList, warmWatchLagMs: warm?.watchLagMs?.(), startup }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(markdown);
  }
  progress(`bench: wrote ${relative(process.cwd(), opts.out) || opts.out}`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
  await cleanup();
  process.exit(1);
});
