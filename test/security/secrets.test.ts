// Logs never carry credentials or the IMDS token, whatever the outcome and the credential source.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useEmulator } from '../emulator/helpers.js';
import type { ImdsStub } from '../support/imds-stub.js';
import { createWorld } from '../support/world.js';
import {
  type AgentNode,
  agentNode,
  INSTANCE_PROFILE_CREDENTIALS,
  type Run,
  runAgent,
} from './support.js';

const env = useEmulator();
/** Credentials given in the environment; distinct values so any leak is attributable. */
const ENV_KEY = { accessKeyId: 'AKIALOGCANARYKEYID01', secretAccessKey: 'log-canary-secret-value' };

let dir: string;
const stubs: ImdsStub[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-secrets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function node(logFile: string): Promise<AgentNode> {
  const world = await createWorld(env.ec2, { mode: 'same-subnet' });
  const made = await agentNode(env.ec2, world, world.primary, dir, { logFile });
  stubs.push(made.imds);
  return made;
}

describe.each([
  ['credentials in the environment', ENV_KEY],
  ['credentials from the instance profile (IMDSv2)', undefined],
] as const)('logs with %s', (_label, credentials) => {
  it('contain no secret key, session token, access key id or IMDS token, in any outcome', async () => {
    const logFile = join(dir, `log-${Date.now()}`, 'agent.log');
    const primary = await node(logFile);
    const runs: Run[] = [];
    const agent = async (args: string[]) => {
      const run = await runAgent(env.emulator.endpoint, primary, args, credentials);
      runs.push(run);
      return run;
    };

    // takeover, then a refused one, then one failing on 5xx until its deadline, status, check.
    expect((await agent(['takeover'])).code).toBe(0);
    await env.emulator.injectFaults({
      action: 'DescribeAddresses',
      error: { code: 'UnauthorizedOperation', status: 403, count: 1 },
    });
    await agent(['release']);
    expect((await agent(['takeover'])).code).toBe(1);
    await env.emulator.injectFaults({
      action: '*',
      error: { code: 'InternalError', status: 500, count: 1_000 },
    });
    expect((await agent(['takeover', '--deadline', '5'])).code).toBe(1);
    await env.emulator.resetFaults();
    expect((await agent(['status', '--json'])).code).toBeLessThan(2);
    expect((await agent(['check'])).code).toBeLessThan(2);

    const log = await readFile(logFile, 'utf8');
    const everything = [log, ...runs.flatMap((r) => [r.stdout, r.stderr])].join('\n');
    // The log file is there and says something about each outcome.
    expect(log).toMatch(/"command":"takeover"/);
    expect(everything).toMatch(/UnauthorizedOperation/);
    expect(everything).toMatch(/InternalError/);

    const secrets = credentials
      ? [credentials.secretAccessKey, credentials.accessKeyId]
      : [
          INSTANCE_PROFILE_CREDENTIALS.secretAccessKey,
          INSTANCE_PROFILE_CREDENTIALS.sessionToken,
          INSTANCE_PROFILE_CREDENTIALS.accessKeyId,
        ];
    expect(primary.imds.issuedTokens.length).toBeGreaterThan(0);
    for (const secret of [...secrets, ...primary.imds.issuedTokens]) {
      expect(everything).not.toContain(secret);
    }
  });
});
