// The agent needs no root: keepalived runs it as script_user (enable_script_security), and every
// command works for an unprivileged user who owns the state and log directories.
import { chmod, chown, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useEmulator } from '../emulator/helpers.js';
import type { ImdsStub } from '../support/imds-stub.js';
import { createWorld } from '../support/world.js';
import { agentNode, runAgent } from './support.js';

const env = useEmulator();
const ENV_KEY = { accessKeyId: 'AKIDTESTONLY', secretAccessKey: 'test-secret-only' };
/** Only root can start a process as another user; CI runs as root. */
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let dir: string;
const stubs: ImdsStub[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-unprivileged-'));
  await chmod(dir, 0o755); // mkdtemp's 0700 would keep nobody out
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

describe('as an unprivileged user (nobody)', () => {
  it.runIf(asRoot)(
    'takeover, release, status and check all work, and its files are its own',
    async () => {
      const home = join(dir, `home-${Date.now()}`);
      await mkdir(home, { mode: 0o755 });
      await chown(home, NOBODY, NOBODY);
      const world = await createWorld(env.ec2, { mode: 'same-subnet' });
      const logFile = join(home, 'log', 'agent.log');
      const primary = await agentNode(env.ec2, world, world.primary, home, { logFile });
      const secondary = await agentNode(env.ec2, world, world.secondary, home, {
        logFile: join(home, 'log', 'secondary.log'),
      });
      stubs.push(primary.imds, secondary.imds);
      const agent = (node: typeof primary, args: string[]) =>
        runAgent(env.emulator.endpoint, node, args, ENV_KEY, {}, { uid: NOBODY, gid: NOBODY });

      for (const [node, args] of [
        [primary, ['takeover']],
        [secondary, ['release']],
        [secondary, ['takeover']],
        [primary, ['release']],
        [primary, ['status', '--json']],
        [secondary, ['check']],
      ] as const) {
        const run = await agent(node, [...args]);
        expect(run.code, `${args.join(' ')}: ${run.stderr}${run.stdout}`).toBe(0);
      }
      for (const path of [primary.stateDir, join(primary.stateDir, 'state.json'), logFile]) {
        expect((await stat(path)).uid, path).toBe(NOBODY);
      }
    },
  );
});
