/**
 * The one-shot agent's start-up, and where a takeover's time goes, told from outside the process
 * where possible: the harness's spawn time, the IMDS stub's arrival times, the emulator's action
 * log (startedAt), and the agent's own JSON log lines (`step done` with durationMs). Every takeover
 * here is a real move, alternating nodes, checked afterwards.
 *
 * Part of `npm run bench`; alone: `npx tsx bench/startup.ts [--runs N]` (after `npm run build`).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type BenchNode,
  BUNDLE,
  cleanup,
  expectHeldBy,
  fmtMs,
  installExitGuards,
  median,
  type Pair,
  runProcess,
  startPair,
  table,
} from './harness.js';

type CredentialMode = 'env' | 'instance-profile';

interface LogLine {
  readonly time?: string;
  readonly msg?: string;
  readonly step?: string;
  readonly durationMs?: number;
}

/** One takeover, as epoch-ms events and the agent's step durations. */
interface TakeoverTrace {
  readonly spawn: number;
  readonly firstImds: number;
  readonly lockDone: number;
  /** First IMDS request under iam/security-credentials/ (instance profile only). */
  readonly firstCredential: number | undefined;
  readonly firstEc2: number;
  readonly verified: number;
  readonly exit: number;
  readonly steps: Readonly<Record<string, number>>;
}

export interface StartupReport {
  readonly runs: number;
  readonly nodeBare: number[];
  readonly bundleVersion: number[];
  readonly bundleVersionNoCache: number[];
  readonly takeovers: Record<CredentialMode, TakeoverTrace[]>;
}

function readLog(path: string, fromOffset: number): LogLine[] {
  const text = readFileSync(path, 'utf8').slice(fromOffset);
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

const fileSize = (path: string): number => {
  try {
    return readFileSync(path, 'utf8').length;
  } catch {
    return 0;
  }
};

async function traceTakeover(
  pair: Pair,
  target: BenchNode,
  mode: CredentialMode,
  files: { config: string; log: string },
): Promise<TakeoverTrace> {
  await pair.emulator.resetLog();
  const logOffset = fileSize(files.log);
  const imdsBefore = target.imds.requests.length;
  const env = pair.env(
    target,
    mode === 'env' ? {} : { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
  );
  const run = await runProcess(
    process.execPath,
    [BUNDLE, 'takeover', '--config', files.config, '--log-file', files.log],
    env,
  );
  if (run.code !== 0) {
    throw new Error(`takeover (${mode}) exited ${run.code}: ${run.stderr.slice(-2_000)}`);
  }
  const imds = target.imds.requests.slice(imdsBefore);
  const ec2 = await pair.clientActions();
  const lines = readLog(files.log, logOffset);
  const at = (line: LogLine | undefined, what: string): number => {
    const t = line?.time ? Date.parse(line.time) : Number.NaN;
    if (Number.isNaN(t)) throw new Error(`the agent's log has no ${what} line`);
    return t;
  };
  const steps: Record<string, number> = {};
  for (const l of lines) {
    if (l.msg === 'step done' && l.step && typeof l.durationMs === 'number') {
      steps[l.step] = (steps[l.step] ?? 0) + l.durationMs;
    }
  }
  const firstEc2 = ec2[0]?.startedAt;
  const firstImds = imds[0]?.receivedAt;
  if (firstEc2 === undefined || firstImds === undefined) {
    throw new Error(`takeover (${mode}) made no IMDS or no EC2 request`);
  }
  return {
    spawn: run.spawnedAt,
    firstImds,
    lockDone: at(
      lines.find((l) => l.msg === 'step done' && l.step === 'lock'),
      'lock "step done"',
    ),
    firstCredential: imds.find((r) => r.path.includes('/iam/security-credentials/'))?.receivedAt,
    firstEc2: Date.parse(firstEc2),
    verified: at(
      lines.find((l) => l.msg === 'takeover verified'),
      '"takeover verified"',
    ),
    exit: run.exitedAt,
    steps,
  };
}

export async function measureStartup(pair: Pair, runs: number): Promise<StartupReport> {
  const files = new Map(pair.nodes.map((n) => [n, pair.agentConfig(n, 'startup')]));
  const filesOf = (n: BenchNode) => {
    const f = files.get(n);
    if (!f) throw new Error('no config');
    return f;
  };
  const release = async (n: BenchNode) => {
    const f = filesOf(n);
    const run = await runProcess(
      process.execPath,
      [BUNDLE, 'release', 'BACKUP', '--config', f.config, '--log-file', f.log],
      pair.env(n),
    );
    if (run.code !== 0) throw new Error(`release exited ${run.code}: ${run.stderr}`);
  };
  for (const n of pair.nodes) await release(n);

  const bareEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const report: StartupReport = {
    runs,
    nodeBare: [],
    bundleVersion: [],
    bundleVersionNoCache: [],
    takeovers: { env: [], 'instance-profile': [] },
  };
  const modes: CredentialMode[] = ['env', 'instance-profile'];
  // One untimed takeover per mode warms the file cache and the emulator.
  for (let i = -1; i < runs; i++) {
    const bare = await runProcess(process.execPath, ['-e', '0'], bareEnv);
    const cached = {
      ...bareEnv,
      EIP_FAILOVER_CACHE_DIR: pair.env(pair.nodes[0]).EIP_FAILOVER_CACHE_DIR ?? '',
    };
    const version = await runProcess(process.execPath, [BUNDLE, '--version'], cached);
    const uncached = await runProcess(process.execPath, [BUNDLE, '--version'], {
      ...bareEnv,
      EIP_FAILOVER_CACHE_DIR: '',
    });
    if (bare.code !== 0 || version.code !== 0 || uncached.code !== 0) {
      throw new Error('node -e 0 or --version failed');
    }
    if (i >= 0) {
      report.nodeBare.push(bare.wallMs);
      report.bundleVersion.push(version.wallMs);
      report.bundleVersionNoCache.push(uncached.wallMs);
    }
    for (const mode of modes) {
      const from = await pair.holder();
      if (from === null) throw new Error('the addresses are not together on one node');
      const target = pair.other(from);
      const trace = await traceTakeover(pair, target, mode, filesOf(target));
      await expectHeldBy(pair, target, `start-up takeover (${mode})`);
      await release(from);
      if (i >= 0) report.takeovers[mode].push(trace);
    }
  }
  return report;
}

export function renderStartup(r: StartupReport): string {
  const med = (values: number[]) => fmtMs(median(values));
  const span = (mode: CredentialMode, f: (t: TakeoverTrace) => number | undefined) => {
    const values = r.takeovers[mode].flatMap((t) => {
      const v = f(t);
      return v === undefined || Number.isNaN(v) ? [] : [v];
    });
    return values.length > 0 ? med(values) : '—';
  };
  const both = (label: string, f: (t: TakeoverTrace) => number | undefined) => [
    label,
    span('env', f),
    span('instance-profile', f),
  ];
  const step = (name: string) => (t: TakeoverTrace) => t.steps[name];
  const bare = median(r.nodeBare);
  const version = median(r.bundleVersion);
  const rows = [
    ['`node -e 0` (process floor)', med(r.nodeBare), ''],
    ['`node eip-failover.mjs --version` without the code cache', med(r.bundleVersionNoCache), ''],
    [
      'of which loading the bundle (− `node -e 0`)',
      fmtMs(median(r.bundleVersionNoCache) - bare),
      '',
    ],
    [
      '`node eip-failover.mjs --version` with the code cache (as deployed)',
      med(r.bundleVersion),
      '',
    ],
    ['of which loading the bundle (− `node -e 0`)', fmtMs(version - bare), ''],
    both('takeover: spawn → first IMDS request (start-up)', (t) => t.firstImds - t.spawn),
    both(
      'first IMDS request → lock step done (identity, resolve, lock)',
      (t) => t.lockDone - t.firstImds,
    ),
    both('lock done → first credentials request (state read, SDK client construction)', (t) =>
      t.firstCredential === undefined ? undefined : t.firstCredential - t.lockDone,
    ),
    both(
      'lock done (or credentials request) → first EC2 request (credential resolution, signing, connect)',
      (t) => t.firstEc2 - (t.firstCredential ?? t.lockDone),
    ),
    both('first EC2 request → "takeover verified"', (t) => t.verified - t.firstEc2),
    both('"takeover verified" → process exit', (t) => t.exit - t.verified),
    both('total: spawn → exit', (t) => t.exit - t.spawn),
    ['agent\'s own "step done" durations:', '', ''],
    ...['identity', 'resolve', 'lock', 'observe', 'assign', 'reobserve', 'associate', 'verify'].map(
      (s) => both(`step ${s}`, step(s)),
    ),
  ];
  return `### Start-up of the one-shot agent (0 ms latency; medians of ${r.runs} takeovers)\n\n${table(
    ['phase', 'env credentials', 'instance profile'],
    rows,
  )}
Times between events in different processes (harness spawn/exit, IMDS stub arrival, emulator
action log startedAt, the agent's log \`time\`) are wall-clock milliseconds; the agent's log and the
emulator's log have 1 ms resolution. With instance-profile credentials the SDK asks IMDS for the
role and its credentials, which splits client construction from credential resolution.
`;
}

// Alone: `npx tsx bench/startup.ts [--runs N]`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
  installExitGuards(10 * 60_000);
  try {
    const pair = await startPair();
    const report = await measureStartup(pair, Number(values.runs));
    process.stdout.write(renderStartup(report));
  } finally {
    await cleanup();
  }
}
