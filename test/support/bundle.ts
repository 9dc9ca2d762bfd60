import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DescribeAddressesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { useEmulator } from '../emulator/helpers.js';
import type { Emulator } from './emulator.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from './imds-stub.js';
import {
  createWorld,
  eniLocalIpv4s,
  stubNodeOf,
  type World,
  type WorldMode,
  type WorldNode,
} from './world.js';

/** The built agent; integration suites run it as keepalived does, as a child process. */
export const BUNDLE = resolve(import.meta.dirname, '../../agent/dist/eip-failover.mjs');

export interface BundleEnv {
  readonly emulator: Emulator;
  readonly ec2: EC2Client;
}

export interface AgentNode {
  readonly world: WorldNode;
  readonly imds: ImdsStub;
  readonly config: string;
  readonly stateDir: string;
  /** Where the config sends the agent's JSON logs; null: none named, so stdout (stderr for status). */
  readonly logFile: string | null;
}

export interface Pair {
  readonly world: World;
  readonly primary: AgentNode;
  readonly secondary: AgentNode;
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The node's private IPs as EC2 has them, primary first: what IMDS local-ipv4s would list. */
export { eniLocalIpv4s as localIpv4s } from './world.js';

/** What setupPair takes beyond the mode. */
export interface PairOptions {
  address?: (world: World, node: 'primary' | 'secondary') => Record<string, string>;
  deadlineSeconds?: number;
  /** false: the config names no log file (default true: `<stateDir>.log`). */
  logFile?: boolean;
}

/**
 * One suite of bundle tests: the emulator, a temp dir (removed after the suite) and the pairs'
 * IMDS stubs (closed after each test). `pair` sets up a pair in them.
 */
export function useBundleSuite(prefix: string): {
  readonly env: BundleEnv;
  pair(mode: WorldMode, options?: PairOptions): Promise<Pair>;
} {
  const env = useEmulator();
  const stubs: ImdsStub[] = [];
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(stubs.splice(0).map((s) => s.close()));
  });
  return { env, pair: (mode, options = {}) => setupPair(env, dir, mode, stubs, options) };
}

/**
 * A pair in the emulator, an IMDS stub per node, and a config file per node (JSON logs to a file).
 * `address` overrides what each node's config says (default: the world's allocation and VIP).
 */
export async function setupPair(
  env: BundleEnv,
  dir: string,
  mode: WorldMode,
  stubs: ImdsStub[],
  options: PairOptions = {},
): Promise<Pair> {
  const world = await createWorld(env.ec2, { mode });
  const make = async (name: 'primary' | 'secondary', node: WorldNode): Promise<AgentNode> => {
    const imds = await startImdsStub({
      metadata: instanceMetadata(stubNodeOf(world, node, { role: 'pair-node-role' }), () =>
        eniLocalIpv4s(env.ec2, node.networkInterfaceId),
      ),
    });
    stubs.push(imds);
    const stateDir = join(
      dir,
      `${mode}-${name}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`,
    );
    const config = `${stateDir}.json`;
    const logFile = options.logFile === false ? null : `${stateDir}.log`;
    const address = options.address?.(world, name) ?? {
      allocationId: world.allocationId,
      ...(world.vip ? { privateIp: world.vip } : {}),
    };
    await writeFile(
      config,
      JSON.stringify({
        addresses: [address],
        deadlineSeconds: options.deadlineSeconds ?? 20,
        stateDir,
        ...(logFile !== null ? { logFile } : {}),
      }),
    );
    return { world: node, imds, config, stateDir, logFile };
  };
  return {
    world,
    primary: await make('primary', world.primary),
    secondary: await make('secondary', world.secondary),
  };
}

/** Explicit fake credentials, region and loopback endpoints: nothing leaves this machine. */
export function agentEnv(env: BundleEnv, node: AgentNode, extra: Record<string, string> = {}) {
  return {
    PATH: process.env.PATH ?? '',
    AWS_ENDPOINT_URL_EC2: env.emulator.endpoint,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: node.imds.endpoint,
    AWS_ACCESS_KEY_ID: 'AKIDTESTONLY',
    AWS_SECRET_ACCESS_KEY: 'test-secret-only',
    AWS_REGION: 'eu-central-1',
    NODE_NO_WARNINGS: '1',
    ...extra,
  };
}

/** Runs one command to its end. */
export function runAgent(
  env: BundleEnv,
  node: AgentNode,
  args: string[],
  extra: Record<string, string> = {},
): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BUNDLE, ...args, '-c', node.config],
      { env: agentEnv(env, node, extra), timeout: 90_000 },
      (err, stdout, stderr) =>
        done({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

/** Starts one command without waiting for it (as keepalived forks a notify script). */
export function spawnAgent(
  env: BundleEnv,
  node: AgentNode,
  args: string[],
  extra: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [BUNDLE, ...args, '-c', node.config], {
    env: agentEnv(env, node, extra),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const done = new Promise<Run>((resolveRun) =>
    child.once('exit', (code, signal) =>
      resolveRun({ code: code ?? (signal === 'SIGKILL' ? 137 : -1), stdout, stderr }),
    ),
  );
  return { child, done };
}

/** Where the Elastic IP points now. */
export async function eip(
  env: BundleEnv,
  world: World,
): Promise<{ eni?: string; ip?: string; instance?: string }> {
  const a = (
    await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [world.allocationId] }))
  ).Addresses?.[0];
  return {
    ...(a?.NetworkInterfaceId ? { eni: a.NetworkInterfaceId } : {}),
    ...(a?.PrivateIpAddress ? { ip: a.PrivateIpAddress } : {}),
    ...(a?.InstanceId ? { instance: a.InstanceId } : {}),
  };
}

/** The mutating calls EC2 applied (status 200, not dry runs), in order. */
export async function mutations(env: BundleEnv): Promise<string[]> {
  return (await env.emulator.actions())
    .filter((a) => a.mutating && !a.dryRun && a.status === 200)
    .map((a) => a.action);
}

export interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly failoverId?: string;
  readonly [key: string]: unknown;
}

/** The agent's JSON log lines (empty when the file does not exist yet). */
export async function logLines(node: AgentNode): Promise<LogLine[]> {
  if (node.logFile === null) return [];
  let text: string;
  try {
    text = await readFile(node.logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
