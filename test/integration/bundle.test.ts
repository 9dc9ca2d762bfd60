import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DescribeAddressesCommand } from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { useEmulator } from '../emulator/helpers.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from '../support/imds-stub.js';
import {
  createWorld,
  eniLocalIpv4s,
  stubNodeOf,
  type World,
  type WorldMode,
  type WorldNode,
} from '../support/world.js';

/**
 * The built bundle, run as keepalived runs it (a child process), against the EC2 emulator and an
 * IMDSv2 stub on loopback. Needs no root.
 */
const BUNDLE = resolve(import.meta.dirname, '../../agent/dist/eip-failover.mjs');
const env = useEmulator();

interface Node {
  readonly world: WorldNode;
  readonly imds: ImdsStub;
  readonly config: string;
  readonly stateDir: string;
}

let world: World;
let dir: string;
const stubs: ImdsStub[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-it-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function setup(mode: WorldMode): Promise<{ primary: Node; secondary: Node }> {
  world = await createWorld(env.ec2, { mode });
  const make = async (name: string, node: WorldNode): Promise<Node> => {
    const imds = await startImdsStub({
      metadata: instanceMetadata(stubNodeOf(world, node, { role: 'pair-node-role' }), () =>
        eniLocalIpv4s(env.ec2, node.networkInterfaceId),
      ),
    });
    stubs.push(imds);
    const stateDir = join(dir, `${mode}-${name}-${Date.now()}`);
    const config = `${stateDir}.json`;
    await writeFile(
      config,
      JSON.stringify({
        addresses: [
          { allocationId: world.allocationId, ...(world.vip ? { privateIp: world.vip } : {}) },
        ],
        deadlineSeconds: 20,
        stateDir,
      }),
    );
    return { world: node, imds, config, stateDir };
  };
  return {
    primary: await make('primary', world.primary),
    secondary: await make('secondary', world.secondary),
  };
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function agent(node: Node, args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BUNDLE, ...args, '-c', node.config],
      {
        env: {
          PATH: process.env.PATH ?? '',
          AWS_ENDPOINT_URL_EC2: env.emulator.endpoint,
          AWS_EC2_METADATA_SERVICE_ENDPOINT: node.imds.endpoint,
          AWS_ACCESS_KEY_ID: 'AKIDTESTONLY',
          AWS_SECRET_ACCESS_KEY: 'test-secret-only',
          AWS_REGION: 'eu-central-1',
          NODE_NO_WARNINGS: '1',
          ...extraEnv,
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) =>
        done({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

async function eip(): Promise<{ eni?: string; ip?: string; instance?: string }> {
  const a = (
    await env.ec2.send(new DescribeAddressesCommand({ AllocationIds: [world.allocationId] }))
  ).Addresses?.[0];
  return {
    ...(a?.NetworkInterfaceId ? { eni: a.NetworkInterfaceId } : {}),
    ...(a?.PrivateIpAddress ? { ip: a.PrivateIpAddress } : {}),
    ...(a?.InstanceId ? { instance: a.InstanceId } : {}),
  };
}

async function mutations(): Promise<string[]> {
  return (await env.emulator.actions())
    .filter((a) => a.mutating && !a.dryRun && a.status === 200)
    .map((a) => a.action);
}

describe('same-subnet pair: the bundle against the emulator', () => {
  let nodes: { primary: Node; secondary: Node };
  beforeEach(async () => {
    nodes = await setup('same-subnet');
    await env.emulator.resetLog();
  });

  it('first takeover assigns the VIP and associates the EIP, with both allow flags', async () => {
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(await eip()).toEqual({
      eni: world.primary.networkInterfaceId,
      ip: '10.0.0.50',
      instance: world.primary.instanceId,
    });
    const log = await env.emulator.actions();
    expect(log.find((a) => a.action === 'AssignPrivateIpAddresses')?.params).toMatchObject({
      AllowReassignment: 'true',
      'PrivateIpAddress.1': '10.0.0.50',
    });
    expect(log.find((a) => a.action === 'AssociateAddress')?.params).toMatchObject({
      AllowReassociation: 'true',
      PrivateIpAddress: '10.0.0.50',
    });
  });

  it('a repeated takeover sends no mutating call', async () => {
    await agent(nodes.primary, ['takeover']);
    await env.emulator.resetLog();
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code).toBe(0);
    expect(await mutations()).toEqual([]);
  });

  it('failover and failback: the second failover works, and the EIP moves with the VIP', async () => {
    expect((await agent(nodes.primary, ['takeover'])).code).toBe(0);
    await env.emulator.resetLog();
    expect((await agent(nodes.secondary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({ eni: world.secondary.networkInterfaceId, ip: '10.0.0.50' });
    // EC2 moved the EIP together with its private IP: no AssociateAddress remap was needed.
    expect(await mutations()).toEqual(['AssignPrivateIpAddresses']);
    expect((await agent(nodes.primary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({ eni: world.primary.networkInterfaceId, ip: '10.0.0.50' });
  });

  it('credentials from the instance profile through IMDSv2 when none are in the environment', async () => {
    const run = await agent(nodes.primary, ['takeover'], {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
    });
    expect(run.code, run.stderr).toBe(0);
    expect(
      nodes.primary.imds.requests.some((r) =>
        r.path.endsWith('/iam/security-credentials/pair-node-role'),
      ),
    ).toBe(true);
  });

  it('throttling on every mutating call is retried to success', async () => {
    await env.emulator.injectFaults([
      { action: 'AssignPrivateIpAddresses', throttle: 2 },
      { action: 'AssociateAddress', throttle: 2 },
    ]);
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    const throttled = (await env.emulator.actions()).filter((a) => a.fault === 'throttle');
    expect(throttled).toHaveLength(4);
    expect(await eip()).toMatchObject({ eni: world.primary.networkInterfaceId });
  });

  it('UnauthorizedOperation: one attempt, exit 1, a line naming the fix', async () => {
    await env.emulator.injectFaults({
      action: 'AssignPrivateIpAddresses',
      error: { code: 'UnauthorizedOperation', status: 403, count: 5 },
    });
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/UnauthorizedOperation.*instance profile/);
    expect(
      (await env.emulator.actions()).filter((a) => a.action === 'AssignPrivateIpAddresses'),
    ).toHaveLength(1);
    expect((await env.emulator.actions()).some((a) => a.action === 'AssociateAddress')).toBe(false);
  });

  it('status: consistent on both nodes after a takeover and a release', async () => {
    await agent(nodes.primary, ['takeover']);
    await agent(nodes.secondary, ['release']);
    const primary = await agent(nodes.primary, ['status', '--json']);
    const secondary = await agent(nodes.secondary, ['status', '--json']);
    expect(primary.code).toBe(0);
    expect(secondary.code).toBe(0);
    expect(JSON.parse(primary.stdout)).toMatchObject({
      consistent: true,
      node: { vrrpState: 'MASTER' },
    });
    expect(JSON.parse(secondary.stdout)).toMatchObject({
      consistent: true,
      node: { vrrpState: 'BACKUP' },
    });
    const table = await agent(nodes.primary, ['status']);
    expect(table.stdout).toMatch(/^verdict\s+CONSISTENT$/m);
  });

  it('status: drift when the secondary records MASTER but does not hold the address', async () => {
    await agent(nodes.primary, ['takeover']);
    await agent(nodes.secondary, ['release']);
    // The secondary records MASTER, but EC2 refuses its move: it is MASTER without the address.
    await env.emulator.injectFaults({
      action: 'AssignPrivateIpAddresses',
      error: { code: 'UnauthorizedOperation', status: 403, count: 1 },
    });
    expect((await agent(nodes.secondary, ['takeover'])).code).toBe(1);
    const run = await agent(nodes.secondary, ['status', '--json']);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.consistent).toBe(false);
    expect(report.problems.join('\n')).toMatch(/this node is MASTER but .* points at/);
    expect(report.problems.join('\n')).toMatch(/last takeover failed/);
  });

  it('status: exit 4 when EC2 cannot be reached', async () => {
    const run = await agent(nodes.primary, ['status', '--json', '--deadline', '5'], {
      AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9',
    });
    expect(run.code).toBe(4);
    expect(JSON.parse(run.stdout).problems[0]).toMatch(/could not be determined/);
  });

  it('check: permitted by DryRun, and no address moves', async () => {
    const run = await agent(nodes.secondary, ['check']);
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/^ok\s+permission AssociateAddress/m);
    expect(await mutations()).toEqual([]);
  });
});

describe('cross-AZ pair', () => {
  it('associates with each node’s primary private IP and assigns nothing', async () => {
    const nodes = await setup('cross-az');
    await env.emulator.resetLog();
    expect((await agent(nodes.primary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({
      eni: world.primary.networkInterfaceId,
      ip: world.primary.privateIp,
    });
    expect((await agent(nodes.secondary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({
      eni: world.secondary.networkInterfaceId,
      ip: world.secondary.privateIp,
    });
    expect(await mutations()).toEqual(['AssociateAddress', 'AssociateAddress']);
  });
});

describe('the bundle stands alone', () => {
  it('runs --help with plain node and no node_modules anywhere above it', async () => {
    const alone = await mkdtemp(join(tmpdir(), 'eip-failover-alone-'));
    try {
      await copyFile(BUNDLE, join(alone, 'eip-failover.mjs'));
      const out = await new Promise<string>((done, fail) =>
        execFile(
          process.execPath,
          [join(alone, 'eip-failover.mjs'), '--help'],
          { cwd: alone, env: { PATH: process.env.PATH ?? '' } },
          (err, stdout) => (err ? fail(err) : done(stdout)),
        ),
      );
      expect(out).toMatch(/Usage: eip-failover/);
      expect(out).toMatch(/takeover/);
    } finally {
      await rm(alone, { recursive: true, force: true });
    }
  });
});

describe('output streams', () => {
  it('status --json keeps stdout to the JSON document; logs go to stderr when no log file is set', async () => {
    const nodes = await setup('same-subnet');
    const run = await agent(nodes.primary, ['status', '--json', '--deadline', '5'], {
      AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9',
    });
    expect(() => JSON.parse(run.stdout)).not.toThrow();
    expect(run.stderr).toMatch(/"msg":"ec2 call/);
  });

  it('a log file that cannot be opened: the takeover still succeeds, and stderr says why', async () => {
    const nodes = await setup('same-subnet');
    const { readFile, mkdir } = await import('node:fs/promises');
    const config = JSON.parse(await readFile(nodes.primary.config, 'utf8'));
    const logFile = join(dir, `log-is-a-dir-${Date.now()}`);
    await mkdir(logFile);
    await writeFile(nodes.primary.config, JSON.stringify({ ...config, logFile }));
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/cannot open log file .* \(EISDIR\); logging to stderr/);
    expect(await eip()).toMatchObject({ eni: world.primary.networkInterfaceId });
  });
});
