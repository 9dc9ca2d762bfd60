import { describe, expect, it } from 'vitest';
import {
  ALLOCATION_ID,
  defaultConfig,
  fakeImds,
  runAgent,
  useAgentFixture,
  virtualClock,
} from './harness.js';

const t = useAgentFixture();

async function expectUsageError(config: unknown, argv: string[], message: RegExp): Promise<void> {
  if (config !== undefined) await t.sandbox.writeConfig(config);
  const imds = fakeImds(t.world);
  const result = await runAgent(argv, { imds, clock: virtualClock() });
  expect(result.code).toBe(2);
  // One line that names the problem and the fix, and nothing sent anywhere.
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(message);
  expect(t.world.mock.calls()).toHaveLength(0);
  expect(imds.calls).toHaveLength(0);
}

describe('configuration errors exit 2 before any API call', () => {
  const takeover = () => ['takeover', '-c', t.sandbox.configPath];

  it('missing allocation id', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { addresses: [{ privateIp: '10.0.0.50' }] }),
      takeover(),
      /allocation id null is not an Elastic IP allocation id.*CDK outputs/,
    );
  });
  it('malformed allocation id', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [{ allocationId: 'eipalloc-XYZ', privateIp: '10.0.0.50' }],
      }),
      takeover(),
      /"eipalloc-XYZ" is not an Elastic IP allocation id/,
    );
  });
  it('an allocation id that only contains a valid one (exact match, not substring)', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [{ allocationId: `x${ALLOCATION_ID}0`, privateIp: '10.0.0.50' }],
      }),
      takeover(),
      /is not an Elastic IP allocation id/,
    );
  });
  it('bad private IP', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [{ allocationId: ALLOCATION_ID, privateIp: '10.0.0.256' }],
      }),
      takeover(),
      /private IP "10\.0\.0\.256" is not an IPv4 address/,
    );
  });
  it('unreadable config: missing file given explicitly', async () => {
    await expectUsageError(
      undefined,
      ['takeover', '-c', `${t.sandbox.dir}/nope.json`],
      /nope\.json does not exist; create it/,
    );
  });
  it('malformed JSON', async () => {
    await expectUsageError('{"addresses": [', takeover(), /is not valid JSON.*fix the syntax/);
  });
  it('not an object', async () => {
    await expectUsageError('[1,2]', takeover(), /must hold a JSON object/);
  });
  it('unknown top-level key', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { deadline: 30 }),
      takeover(),
      /unknown key "deadline".*check the spelling/,
    );
  });
  it('unknown key in an address', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [{ allocationId: ALLOCATION_ID, privateIP: '10.0.0.50' }],
      }),
      takeover(),
      /unknown key "privateIP" in addresses\[0\]/,
    );
  });
  it('no addresses', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { addresses: [] }),
      takeover(),
      /no address configured/,
    );
  });
  it('duplicate allocation', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [
          { allocationId: ALLOCATION_ID, privateIp: '10.0.0.50' },
          { allocationId: ALLOCATION_ID, privateIp: '10.0.0.51' },
        ],
      }),
      takeover(),
      /repeats allocation/,
    );
  });
  it('deadline out of range or of the wrong type', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { deadlineSeconds: 0 }),
      takeover(),
      /whole number of seconds from 5 to 3600/,
    );
    await expectUsageError(
      defaultConfig(t.sandbox, { deadlineSeconds: '60' }),
      takeover(),
      /whole number of seconds/,
    );
    await t.sandbox.writeConfig(defaultConfig(t.sandbox));
    await expectUsageError(
      undefined,
      [...takeover(), '--deadline', '1.5'],
      /--deadline must be a whole number/,
    );
  });
  it('relative state dir', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { stateDir: 'run/eip' }),
      takeover(),
      /stateDir "run\/eip" must be an absolute path/,
    );
  });
  it('bad region', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { region: 'Frankfurt' }),
      takeover(),
      /region "Frankfurt" is not an AWS region name/,
    );
  });
  it('bad interface name', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, { interface: 'eth0; rm -rf /' }),
      takeover(),
      /is not a network interface name/,
    );
  });
  it('an interface that does not exist on this host', async () => {
    await t.sandbox.writeConfig(defaultConfig(t.sandbox, { interface: 'eth9' }));
    const imds = fakeImds(t.world);
    const result = await runAgent(takeover(), {
      imds,
      clock: virtualClock(),
      sysClassNet: `${t.sandbox.dir}/sys`,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/interface eth9 does not exist on this host/);
    expect(imds.calls).toHaveLength(0);
    expect(t.world.mock.calls()).toHaveLength(0);
  });
  it('--private-ip with several configured addresses', async () => {
    await expectUsageError(
      defaultConfig(t.sandbox, {
        addresses: [
          { allocationId: ALLOCATION_ID, privateIp: '10.0.0.50' },
          { allocationId: 'eipalloc-0123456789abcdef1', privateIp: '10.0.0.51' },
        ],
      }),
      [...takeover(), '--private-ip', '10.0.0.52'],
      /--private-ip needs exactly one address/,
    );
  });
  it('an unknown flag or command', async () => {
    const flag = await runAgent(['takeover', '--allocation', 'x']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/unknown option '--allocation'/);
    const command = await runAgent(['failover']);
    expect(command.code).toBe(2);
  });
});

describe('precedence: flags over environment over file', () => {
  it('--allocation-id and --private-ip work without any config file at the default path', async () => {
    const result = await runAgent(
      [
        'takeover',
        '--allocation-id',
        ALLOCATION_ID,
        '--private-ip',
        '10.0.0.50',
        '--state-dir',
        t.sandbox.stateDir,
        '--region',
        'eu-central-1',
      ],
      {
        imds: fakeImds(t.world),
        clock: virtualClock(),
        readConfigFile: () => {
          throw Object.assign(new Error('absent'), { code: 'ENOENT' });
        },
      },
    );
    expect(result.code).toBe(0);
  });
  it('EIP_FAILOVER_CONFIG names the file; --config overrides it', async () => {
    await t.sandbox.writeConfig(defaultConfig(t.sandbox, { region: 'Frankfurt' }));
    const viaEnv = await runAgent(['release'], {
      env: { EIP_FAILOVER_CONFIG: t.sandbox.configPath },
      imds: fakeImds(t.world),
      clock: virtualClock(),
    });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.stderr).toContain(t.sandbox.configPath);
  });
  it('--help and --version exit 0', async () => {
    const help = await runAgent(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/takeover/);
    const version = await runAgent(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });
});
