/**
 * What the benchmark and the start-up report share: the emulated pair (EC2 emulator, one loopback
 * IMDSv2 stub per node reflecting the emulator's current assignment), timed child processes, the
 * check that a run really moved the addresses, statistics, and cleanup on exit or interruption.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { type ActionRecord, type Emulator, startEmulator } from '../test/support/emulator.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from '../test/support/imds-stub.js';
import {
  createWorld,
  eniLocalIpv4s,
  stubNodeOf,
  type World,
  type WorldNode,
} from '../test/support/world.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const BUNDLE = join(ROOT, 'agent/dist/eip-failover.mjs');
export const REGION = 'eu-central-1';
export const FAKE_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'AKIDTESTONLY',
  AWS_SECRET_ACCESS_KEY: 'test-secret-only',
} as const;
/** The instance profile role the IMDS stubs serve (for runs without credentials in the env). */
export const ROLE = 'pair-node-role';

/** Wall-clock epoch milliseconds with sub-millisecond precision, comparable across processes. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------------------------------------
// Cleanup: everything started here is stopped on normal exit, on an error and on SIGINT/SIGTERM.

const cleanups: (() => void | Promise<void>)[] = [];
const children = new Set<ChildProcess>();

export function onCleanup(fn: () => void | Promise<void>): void {
  cleanups.push(fn);
}

export async function cleanup(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup step failed: ${String(err)}\n`);
    }
  }
}

/** SIGINT/SIGTERM and an overall time limit end the run with cleanup, never with orphans. */
export function installExitGuards(timeLimitMs: number): void {
  const stop = (why: string, code: number) => {
    process.stderr.write(`\nbench: ${why}; cleaning up\n`);
    void cleanup().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => stop('interrupted', 130));
  process.once('SIGTERM', () => stop('terminated', 143));
  const timer = setTimeout(
    () => stop(`time limit of ${timeLimitMs / 1000} s reached`, 1),
    timeLimitMs,
  );
  timer.unref();
  process.once('exit', () => {
    for (const child of children) child.kill('SIGKILL');
  });
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ------------------------------------------------------------------------------------------------
// Child processes.

export interface ProcessRun {
  readonly code: number | null;
  readonly signal: string | null;
  /** Spawn to exit, measured here (performance.now), milliseconds. */
  readonly wallMs: number;
  /** Wall-clock epoch ms just before spawn, for comparison with stub and emulator timestamps. */
  readonly spawnedAt: number;
  readonly exitedAt: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; the wall time is spawn → exit event, output collected aside. */
export function runProcess(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ProcessRun> {
  return new Promise((done, fail) => {
    const spawnedAt = wallNow();
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    let exit: { code: number | null; signal: string | null; wallMs: number; exitedAt: number };
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      fail(err);
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal, wallMs: performance.now() - started, exitedAt: wallNow() };
    });
    child.once('close', () => {
      clearTimeout(timer);
      children.delete(child);
      done({ ...exit, spawnedAt, stdout, stderr });
    });
  });
}

/** A long-lived child (the warm agent); killed at cleanup if still running. */
export function startProcess(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
): ChildProcess {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The real `aws` executable: a pyenv shim would add its own start-up to every CLI call. */
export function resolveAwsCli(): string {
  try {
    return execFileSync('pyenv', ['which', 'aws'], { encoding: 'utf8' }).trim();
  } catch {
    return execFileSync('bash', ['-c', 'command -v aws'], { encoding: 'utf8' }).trim();
  }
}

// ------------------------------------------------------------------------------------------------
// The emulated pair.

export interface BenchNode {
  readonly name: 'A' | 'B';
  readonly world: WorldNode;
  readonly imds: ImdsStub;
}

export interface Placement {
  /** The ENI the Elastic IP is associated with, and on which private IP. */
  readonly eipEni: string | null;
  readonly eipPrivateIp: string | null;
  /** The ENI that holds the VIP as a secondary private IP. */
  readonly vipEni: string | null;
}

export interface Pair {
  readonly emulator: Emulator;
  /** Exempt from injected faults: the harness watches, it is not the client under test. */
  readonly observer: EC2Client;
  readonly world: World;
  readonly vip: string;
  readonly nodes: readonly [BenchNode, BenchNode];
  readonly dir: string;
  /** Environment for a process acting as `node` (agent or shell hook): fake creds, loopback only. */
  env(node: BenchNode, extra?: Record<string, string>): Record<string, string>;
  placement(): Promise<Placement>;
  /** The node holding both the EIP and the VIP, or null if they are apart or nowhere. */
  holder(): Promise<BenchNode | null>;
  other(node: BenchNode): BenchNode;
  /** Agent config file for one node and one purpose, with its own state dir. */
  agentConfig(node: BenchNode, purpose: string): { config: string; stateDir: string; log: string };
  /** EC2 actions the clients under test sent since the last resetLog (exempt ones left out). */
  clientActions(): Promise<ActionRecord[]>;
}

export class NotMovedError extends Error {}

/** Starts the emulator and both stubs, builds a same-subnet pair, puts the EIP on node A. */
export async function startPair(): Promise<Pair> {
  const emulator = await startEmulator();
  onCleanup(() => emulator.stop());
  const observer = emulator.client({ maxAttempts: 3, exemptFromFaults: true });
  onCleanup(() => observer.destroy());
  const world = await createWorld(observer, { mode: 'same-subnet' });
  const vip = world.vip;
  if (vip === undefined) throw new Error('a same-subnet world has a VIP');
  const dir = tempDir('eip-failover-bench-');
  // As the role deploys it: the agent's V8 code cache in a directory only its user may write.
  const codeCache = join(dir, 'code-cache');
  mkdirSync(codeCache, { mode: 0o750 });

  const localIpv4s = (eni: string) => eniLocalIpv4s(observer, eni);
  const makeNode = async (name: 'A' | 'B', node: WorldNode): Promise<BenchNode> => {
    const imds = await startImdsStub({
      metadata: instanceMetadata(stubNodeOf(world, node, { region: REGION, role: ROLE }), () =>
        localIpv4s(node.networkInterfaceId),
      ),
    });
    onCleanup(() => imds.close());
    return { name, world: node, imds };
  };
  const nodes = [await makeNode('A', world.primary), await makeNode('B', world.secondary)] as const;

  // The starting point: node A holds the VIP and the EIP on it.
  await observer.send(
    new AssignPrivateIpAddressesCommand({
      NetworkInterfaceId: world.primary.networkInterfaceId,
      PrivateIpAddresses: [vip],
      AllowReassignment: true,
    }),
  );
  await observer.send(
    new AssociateAddressCommand({
      AllocationId: world.allocationId,
      NetworkInterfaceId: world.primary.networkInterfaceId,
      PrivateIpAddress: vip,
      AllowReassociation: true,
    }),
  );

  const placement = async (): Promise<Placement> => {
    const [addresses, enis] = await Promise.all([
      observer.send(new DescribeAddressesCommand({ AllocationIds: [world.allocationId] })),
      observer.send(
        new DescribeNetworkInterfacesCommand({
          Filters: [{ Name: 'vpc-id', Values: [world.vpcId] }],
        }),
      ),
    ]);
    const address = addresses.Addresses?.[0];
    const vipEni = (enis.NetworkInterfaces ?? []).find((n) =>
      (n.PrivateIpAddresses ?? []).some((p) => !p.Primary && p.PrivateIpAddress === vip),
    );
    return {
      eipEni: address?.NetworkInterfaceId ?? null,
      eipPrivateIp: address?.PrivateIpAddress ?? null,
      vipEni: vipEni?.NetworkInterfaceId ?? null,
    };
  };

  return {
    emulator,
    observer,
    world,
    vip,
    nodes,
    dir,
    env: (node, extra = {}) => ({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      ...FAKE_CREDENTIALS,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ENDPOINT_URL_EC2: emulator.endpoint,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: node.imds.endpoint,
      // Nothing may read a real profile, config file or metadata service.
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      EIP_FAILOVER_CACHE_DIR: codeCache,
      ...extra,
    }),
    placement,
    holder: async () => {
      const p = await placement();
      return (
        nodes.find(
          (n) =>
            p.eipEni === n.world.networkInterfaceId &&
            p.vipEni === n.world.networkInterfaceId &&
            p.eipPrivateIp === vip,
        ) ?? null
      );
    },
    other: (node) => (node === nodes[0] ? nodes[1] : nodes[0]),
    agentConfig: (node, purpose) => {
      const base = join(dir, `${purpose}-${node.name}`);
      const config = `${base}.json`;
      const stateDir = `${base}.state`;
      writeFileSync(
        config,
        JSON.stringify({
          addresses: [{ allocationId: world.allocationId, privateIp: vip }],
          deadlineSeconds: 20,
          stateDir,
        }),
      );
      return { config, stateDir, log: `${base}.log` };
    },
    clientActions: async () => (await emulator.actions()).filter((a) => !a.exempt),
  };
}

/** A run counts only if it moved both addresses onto the target node. */
export async function expectHeldBy(pair: Pair, target: BenchNode, what: string): Promise<void> {
  const p = await pair.placement();
  const eni = target.world.networkInterfaceId;
  if (p.eipEni !== eni || p.vipEni !== eni || p.eipPrivateIp !== pair.vip) {
    throw new NotMovedError(
      `${what} did not move the addresses to node ${target.name} (${eni}): EIP on ${p.eipEni} ${p.eipPrivateIp}, VIP on ${p.vipEni}`,
    );
  }
}

// ------------------------------------------------------------------------------------------------
// Statistics.

/** Linear interpolation between closest ranks; q in [0, 1]. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

export function fmtMs(ms: number): string {
  if (Number.isNaN(ms)) return '—';
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** A Markdown table with columns padded for reading as plain text too. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  // The separator row as Biome formats Markdown, so that `npm run lint` accepts RESULTS.md.
  return [line(header), `|${widths.map((w) => ` ${'-'.repeat(w)} `).join('|')}|`, ...rows.map(line)]
    .join('\n')
    .concat('\n');
}
