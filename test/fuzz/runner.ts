import { execFile, execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { run } from '../../agent/src/cli.js';
import { ImdsClient } from '../../agent/src/imds.js';
import type { Clock } from '../../agent/src/retry.js';
import type { ConfigSpec, FuzzCase } from './cases.js';
import { type Ec2Record, startFakeEc2 } from './ec2-fake.js';
import { startFakeImds } from './imds-fake.js';
import { buildModel, EXPIRED_KEY, metadataFor } from './world.js';

/** What one run of a case showed. code null: it did not end within the watchdog's bound. */
export interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly imdsRequests: number;
  readonly ec2: readonly Ec2Record[];
  readonly ms: number;
}

/** No case may take longer than this; one that does is a hang. */
export const WATCHDOG_MS = { inProcess: 30_000, process: 60_000 } as const;

async function writeConfig(spec: ConfigSpec, dir: string): Promise<string> {
  const path = join(dir, 'config.json');
  const fill = (text: string) => text.replaceAll('@DIR@', dir);
  switch (spec.kind) {
    case 'text':
      await writeFile(path, fill(spec.text));
      return path;
    case 'bytes':
      await writeFile(
        path,
        Buffer.from(fill(Buffer.from(spec.base64, 'base64').toString('latin1')), 'latin1'),
      );
      return path;
    case 'huge': {
      const head = spec.valid
        ? fill(
            JSON.stringify({
              addresses: [{ allocationId: 'eipalloc-0f0e0d0c0b0a09081' }],
              stateDir: '@DIR@/state',
            }),
          )
        : '{"addresses": [';
      await writeFile(
        path,
        Buffer.concat([Buffer.from(head), Buffer.alloc(spec.bytes - head.length, 0x20)]),
      );
      return path;
    }
    case 'directory':
      await mkdir(path);
      return path;
    case 'fifo':
      execFileSync('mkfifo', [path]);
      return path;
    case 'missing':
      return path;
    case 'path':
      return spec.path;
  }
}

/** Real time plus whatever the agent slept: backoff and polling cost nothing, timeouts stay real. */
function fastClock(): Clock {
  let skipped = 0;
  return {
    now: () => Date.now() + skipped,
    sleep: async (ms) => {
      skipped += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
    random: () => 0.5,
  };
}

interface Prepared {
  readonly argv: string[];
  readonly env: Record<string, string>;
  readonly imds: Awaited<ReturnType<typeof startFakeImds>>;
  readonly ec2: Awaited<ReturnType<typeof startFakeEc2>>;
}

async function prepare(c: FuzzCase, dir: string): Promise<Prepared> {
  await mkdir(dir, { recursive: true });
  const configPath = await writeConfig(c.config, dir);
  if (c.recordedState === 'MASTER') {
    await mkdir(join(dir, 'state'), { recursive: true });
    await writeFile(
      join(dir, 'state', 'state.json'),
      JSON.stringify({
        seq: 1,
        vrrpState: 'MASTER',
        vrrpStateSince: new Date().toISOString(),
        lastTakeover: null,
        origin: null,
      }),
    );
  }
  const model = buildModel(c.world);
  const ec2 = await startFakeEc2(model, c.ec2Faults);
  if (c.expiredCredentials) ec2.expiredKeys.add(EXPIRED_KEY);
  const imds = await startFakeImds(metadataFor(c, model), c.imdsFaults);
  const argv = c.argv.map((a) => a.replaceAll('@CONFIG@', configPath).replaceAll('@DIR@', dir));
  const env: Record<string, string> = {
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    ...(c.envCredentials
      ? { AWS_ACCESS_KEY_ID: 'AKIDTESTONLY', AWS_SECRET_ACCESS_KEY: 'test-secret-only' }
      : {}),
    ...(c.envRegion !== undefined ? { AWS_REGION: c.envRegion } : {}),
  };
  return { argv, env, imds, ec2 };
}

async function finish(p: Prepared, dir: string): Promise<void> {
  await Promise.all([p.imds.close(), p.ec2.close()]);
  await rm(dir, { recursive: true, force: true });
}

/** The bulk: run(argv, deps) in this process, with the real IMDS client and the SDK gateway. */
export async function runInProcess(c: FuzzCase, root: string): Promise<Outcome> {
  const dir = join(root, c.id.replace('#', '-'));
  const p = await prepare(c, dir);
  let stdout = '';
  let stderr = '';
  const started = Date.now();
  // The SDK reads its endpoint from the process environment; cases run one at a time.
  const saved = process.env.AWS_ENDPOINT_URL_EC2;
  process.env.AWS_ENDPOINT_URL_EC2 = p.ec2.endpoint;
  let timer: NodeJS.Timeout | undefined;
  try {
    const code = await Promise.race([
      run(p.argv, {
        env: p.env,
        stdout: (t) => {
          stdout += t;
        },
        stderr: (t) => {
          stderr += t;
        },
        clock: fastClock(),
        imds: new ImdsClient({ endpoint: p.imds.endpoint, sleep: async () => {} }),
        logStream: new Writable({ write: (_chunk, _enc, done) => done() }),
        sysClassNet: join(dir, 'sys-class-net'),
        origin: null,
      }),
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), WATCHDOG_MS.inProcess);
      }),
    ]);
    return {
      code,
      stdout,
      stderr,
      imdsRequests: p.imds.requests.length,
      ec2: [...p.ec2.records],
      ms: Date.now() - started,
    };
  } catch (err) {
    // run() promises never to throw: a rejection is a finding, reported as such.
    return {
      code: -1,
      stdout,
      stderr: `${stderr}run() threw: ${(err as Error)?.stack ?? String(err)}`,
      imdsRequests: p.imds.requests.length,
      ec2: [...p.ec2.records],
      ms: Date.now() - started,
    };
  } finally {
    clearTimeout(timer);
    process.env.AWS_ENDPOINT_URL_EC2 = saved;
    await finish(p, dir);
  }
}

/** The sample: the built bundle as keepalived runs it, a child process with its own environment. */
export async function runProcess(c: FuzzCase, root: string, bundle: string): Promise<Outcome> {
  const dir = join(root, `p-${c.id.replace('#', '-')}`);
  const p = await prepare(c, dir);
  const started = Date.now();
  try {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        execFile(
          process.execPath,
          [bundle, ...p.argv],
          {
            env: { PATH: process.env.PATH ?? '', ...p.env },
            cwd: '/',
            timeout: WATCHDOG_MS.process,
            killSignal: 'SIGKILL',
            maxBuffer: 64 * 1024 * 1024,
          },
          (err, stdout, stderr) => {
            const e = err as
              | (NodeJS.ErrnoException & { code?: number | string; killed?: boolean })
              | null;
            const code =
              e === null ? 0 : e.killed ? null : typeof e.code === 'number' ? e.code : -1;
            resolve({ code, stdout, stderr });
          },
        );
      },
    );
    return {
      ...result,
      imdsRequests: p.imds.requests.length,
      ec2: [...p.ec2.records],
      ms: Date.now() - started,
    };
  } finally {
    await finish(p, dir);
  }
}

const STACK = /^\s+at \S|node:internal|^\S*Error: .*\n\s+at /m;

/** Every way the outcome breaks the contract; empty when the case passed. */
export function violations(c: FuzzCase, o: Outcome, where: 'in-process' | 'process'): string[] {
  const out: string[] = [];
  if (o.code === null)
    return [
      `no exit within ${WATCHDOG_MS[where === 'process' ? 'process' : 'inProcess'] / 1000} s (hang)`,
    ];
  if (!c.expect.exit.includes(o.code))
    out.push(`exit ${o.code}, expected ${c.expect.exit.join(' or ')}`);
  // JSON log records may carry an error's stack in their `err` field, for whoever reads the log;
  // what a person reads as a message (every other line, on either stream) must carry none.
  const messages = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '' && !/^\{"level":/.test(l))
      .join('\n');
  if (STACK.test(messages(o.stderr)) || STACK.test(messages(o.stdout))) {
    out.push('a stack trace in the output');
  }

  // The agent's own lines on stderr: JSON log lines (status and check log there) are not messages.
  const lines = messages(o.stderr)
    .split('\n')
    .filter((l) => l !== '');
  const command = c.argv[0] ?? '';
  const reportsOnStdout = command === 'status' || command === 'check';
  const quiet = o.code === 0 || (reportsOnStdout && o.code !== 2);
  if (quiet) {
    if (lines.length > 0) out.push(`stderr should be empty, has ${lines.length} line(s)`);
  } else if (o.code !== null && o.code > 0) {
    if (lines.length !== 1) out.push(`stderr has ${lines.length} lines, not one`);
    const line = lines[0] ?? '';
    if (!line.startsWith('eip-failover: '))
      out.push('the stderr line does not start with "eip-failover: "');
    if (line.length > 1_000) out.push(`the stderr line is ${line.length} characters long`);
    if (/unexpected error|\[object Object\]|\bundefined\b/.test(line))
      out.push('the stderr line is not a clear message');
    const names = c.expect.names;
    if (
      o.code === 2 &&
      names !== undefined &&
      !names.some((n) => line.toLowerCase().includes(n.toLowerCase()))
    ) {
      out.push(`the message names none of ${names.map((n) => JSON.stringify(n)).join(', ')}`);
    }
  }
  if (reportsOnStdout && (o.code === 1 || o.code === 4)) {
    // status and check give their reasons in their report.
    const json = c.argv.includes('--json');
    if (json) {
      try {
        const report = JSON.parse(o.stdout) as { problems?: unknown[] };
        if (!Array.isArray(report.problems) || report.problems.length === 0)
          out.push('status --json lists no problem');
      } catch {
        out.push('status --json printed no JSON document');
      }
    } else if (command === 'status' && !/^verdict\s+(UNKNOWN|DRIFT)$/m.test(o.stdout)) {
      out.push('status printed no verdict');
    } else if (command === 'check' && !/^FAIL\s/m.test(o.stdout)) {
      out.push('check printed no FAIL line');
    }
  }
  if (o.code === 2 && (o.imdsRequests > 0 || o.ec2.length > 0)) {
    out.push(`exit 2 after ${o.imdsRequests} IMDS and ${o.ec2.length} EC2 requests`);
  } else if (c.expect.noApiCall && (o.imdsRequests > 0 || o.ec2.length > 0)) {
    out.push('an API call was made for a usage or config error');
  }
  const firstBad = o.ec2.findIndex((r) => r.unparseable);
  if (firstBad >= 0) {
    const after = o.ec2.slice(firstBad + 1).filter((r) => r.mutating);
    if (after.length > 0) {
      out.push(
        `${after.map((r) => r.action).join(', ')} sent after an unparseable ${o.ec2[firstBad]?.action} answer`,
      );
    }
  }
  return out;
}
