import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type AgentNode,
  BUNDLE,
  eip as eipOf,
  mutations as mutationsOf,
  type Pair,
  runAgent,
  useBundleSuite,
} from '../support/bundle.js';

/**
 * The built bundle, run as keepalived runs it (a child process), against the EC2 emulator and an
 * IMDSv2 stub on loopback. Needs no root. The configs name no log file: the agent logs to stdout
 * (stderr for status and check), as it does by default.
 */
const suite = useBundleSuite('eip-failover-it-');
const env = suite.env;
let pair: Pair;
const setup = async (mode: 'same-subnet' | 'cross-az') => {
  pair = await suite.pair(mode, { logFile: false });
  return pair;
};
const agent = (node: AgentNode, args: string[], extra: Record<string, string> = {}) =>
  runAgent(env, node, args, extra);
const eip = () => eipOf(env, pair.world);
const mutations = () => mutationsOf(env);

describe('same-subnet pair: the bundle against the emulator', () => {
  let nodes: Pair;
  beforeEach(async () => {
    nodes = await setup('same-subnet');
    await env.emulator.resetLog();
  });

  it('first takeover assigns the VIP and associates the EIP, with both allow flags', async () => {
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(await eip()).toEqual({
      eni: pair.world.primary.networkInterfaceId,
      ip: '10.0.0.50',
      instance: pair.world.primary.instanceId,
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
    expect(await eip()).toMatchObject({
      eni: pair.world.secondary.networkInterfaceId,
      ip: '10.0.0.50',
    });
    // EC2 moved the EIP together with its private IP: no AssociateAddress remap was needed.
    expect(await mutations()).toEqual(['AssignPrivateIpAddresses']);
    expect((await agent(nodes.primary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({
      eni: pair.world.primary.networkInterfaceId,
      ip: '10.0.0.50',
    });
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
    expect(await eip()).toMatchObject({ eni: pair.world.primary.networkInterfaceId });
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
      eni: pair.world.primary.networkInterfaceId,
      ip: pair.world.primary.privateIp,
    });
    expect((await agent(nodes.secondary, ['takeover'])).code).toBe(0);
    expect(await eip()).toMatchObject({
      eni: pair.world.secondary.networkInterfaceId,
      ip: pair.world.secondary.privateIp,
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
    const config = JSON.parse(await readFile(nodes.primary.config, 'utf8'));
    const logFile = `${nodes.primary.stateDir}-log-is-a-dir`;
    await mkdir(logFile);
    await writeFile(nodes.primary.config, JSON.stringify({ ...config, logFile }));
    const run = await agent(nodes.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/cannot open log file .* \(EISDIR\); logging to stderr/);
    expect(await eip()).toMatchObject({ eni: pair.world.primary.networkInterfaceId });
  });
});
