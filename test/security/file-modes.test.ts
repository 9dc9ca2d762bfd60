// The files the agent creates are not writable by other users, nor readable where they hold state
// or logs, whatever umask the agent is started with (keepalived's, a shell's).
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useEmulator } from '../emulator/helpers.js';
import type { ImdsStub } from '../support/imds-stub.js';
import { createWorld } from '../support/world.js';
import { agentNode, runAgent } from './support.js';

const env = useEmulator();
const ENV_KEY = { accessKeyId: 'AKIDTESTONLY', secretAccessKey: 'test-secret-only' };

let dir: string;
const stubs: ImdsStub[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-modes-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

describe('file modes', () => {
  it('under umask 000: state dir 0750, state file and log file 0640, log dir 0750', async () => {
    const logFile = join(dir, `umask-${Date.now()}`, 'logs', 'agent.log');
    const world = await createWorld(env.ec2, { mode: 'same-subnet' });
    const primary = await agentNode(env.ec2, world, world.primary, dir, { logFile });
    stubs.push(primary.imds);
    const run = await runAgent(
      env.emulator.endpoint,
      primary,
      ['takeover'],
      ENV_KEY,
      {},
      { umask: '000' },
    );
    expect(run.code, run.stderr).toBe(0);
    const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);
    expect(await mode(primary.stateDir)).toBe('750');
    expect(await mode(join(primary.stateDir, 'state.json'))).toBe('640');
    expect(await mode(logFile)).toBe('640');
    expect(await mode(dirname(logFile))).toBe('750');
    expect(await mode(dirname(dirname(logFile)))).toBe('750');
  });
});
