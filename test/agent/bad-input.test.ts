import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { DescribeAddressesCommand, DescribeNetworkInterfacesCommand } from '@aws-sdk/client-ec2';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { createEc2Client, SdkEc2Gateway } from '../../agent/src/ec2.js';
import { DeadlineError } from '../../agent/src/errors.js';
import { Deadline, systemClock } from '../../agent/src/retry.js';
import { startFakeEc2 } from '../fuzz/ec2-fake.js';
import { buildModel, ALLOCATION_ID as FUZZ_ALLOCATION_ID } from '../fuzz/world.js';
import { instanceMetadata, startImdsStub } from '../support/imds-stub.js';
import {
  ALLOCATION_ID,
  defaultConfig,
  fakeImds,
  runAgent,
  THIS_NODE,
  useAgentFixture,
  VIP,
} from './harness.js';

/**
 * Regressions for what the fuzzer (test/fuzz) found: bad input of every kind ends with the right
 * exit code and one line on stderr that starts with "eip-failover:" and names the problem, and an
 * answer the agent cannot read is never acted on.
 */
const t = useAgentFixture();

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  const [line] = lines as [string];
  expect(line).toMatch(/^eip-failover: /);
  return line;
}

describe('command-line errors are one line', () => {
  it.each([
    [['takeover', '--bogus'], 'takeover', /unknown option '--bogus'/],
    [
      ['takeover', '--allocation_id', 'x'],
      'takeover',
      /unknown option '--allocation_id' \(Did you mean --allocation-id\?\)/,
    ],
    [['--region', 'x', 'takeover'], null, /unknown option '--region'/],
    [['failover'], null, /unknown command 'failover'/],
    [['takeover', '--deadline'], 'takeover', /option '--deadline <seconds>' argument missing/],
    [['notify', 'INSTANCE'], 'notify', /missing required argument 'name'/],
    [
      ['notify', 'INSTANCE', 'VI_1', 'MASTER', '100', 'extra'],
      'notify',
      /too many arguments for 'notify'/,
    ],
    // An argument that starts with a dash is read as an option (found by the fuzzer).
    [['notify', '-A', 'VI_1', 'MASTER'], 'notify', /unknown option '-A'/],
    [['release', '-x'], 'release', /unknown option '-x'/],
  ])('%j', async (argv, command, message) => {
    // Parse errors come before the config is read: no -c needed.
    const result = await runAgent(argv);
    expect(result.code).toBe(2);
    const line = oneLine(result.stderr);
    expect(line).toMatch(message);
    // An error inside a command names it; one before any command names none.
    expect(line.startsWith(`eip-failover: ${command === null ? '' : `${command}: `}`)).toBe(true);
    if (command === null) expect(line).not.toMatch(/^eip-failover: \w+: /);
    expect(line).toMatch(/run eip-failover --help for usage/);
    expect(t.world.mock.calls()).toHaveLength(0);
  });

  it('no arguments at all: one line naming the commands, not the whole help', async () => {
    const result = await runAgent([]);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/a command is required \(takeover, release,/);
  });

  it('--help still prints the whole help on stdout', async () => {
    const result = await runAgent(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Usage: eip-failover/);
    expect(result.stderr).toBe('');
  });
});

describe('values from outside are quoted, escaped and cut in messages', () => {
  const usageLine = async (argv: string[], config?: string): Promise<string> => {
    if (config !== undefined) await t.sandbox.writeConfig(config);
    const result = await t.agent(argv);
    expect(result.code, result.stderr).toBe(2);
    expect(t.world.mock.calls()).toHaveLength(0);
    return oneLine(result.stderr);
  };

  it('a line break inside a flag value stays escaped', async () => {
    expect(await usageLine(['takeover', '--region', 'eu-central-1\nx'])).toMatch(
      /region "eu-central-1\\nx" is not an AWS region name/,
    );
    expect(await usageLine(['release', 'BACK\nUP'])).toMatch(/not "BACK\\nUP"/);
    expect(await usageLine(['notify', 'INSTANCE', 'VI_1', 'MAS\nTER'])).toMatch(
      /got "INSTANCE VI_1 MAS\\nTER"/,
    );
  });

  it('a line break in a config key or a JSON syntax error stays on one line', async () => {
    const config = JSON.stringify({ addresses: [], 'dead\nline': 1 });
    expect(await usageLine(['takeover'], config)).toMatch(/unknown key "dead\\nline"/);
    expect(await usageLine(['takeover'], '{"addresses":\n\n x}')).toMatch(/is not valid JSON/);
  });

  it('a 100 000-character value is cut, not echoed', async () => {
    const line = await usageLine(['takeover', '--interface', 'x'.repeat(100_000)]);
    expect(line).toMatch(/interface "x+…" is not a network interface name/);
    expect(line.length).toBeLessThan(400);
  });

  it('a value nested too deep for JSON.stringify is a config error, not an unexpected one', async () => {
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const config = `{"addresses": [{"allocationId": ${deep}}], "stateDir": "${t.sandbox.stateDir}"}`;
    expect(await usageLine(['takeover'], config)).toMatch(
      /addresses\[0\].*allocation id a list nested too deep is not an Elastic IP allocation id/,
    );
    const deadline = `{"addresses": [{"allocationId": "eipalloc-0123456789abcdef0"}], "deadlineSeconds": ${deep}}`;
    expect(await usageLine(['takeover'], deadline)).toMatch(/deadline a list nested too deep/);
  });
});

describe('the config file: only a regular UTF-8 file of at most 64 KiB is read', () => {
  it('a FIFO is refused at once instead of blocking for a writer that never comes', async () => {
    const fifo = join(t.sandbox.dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    // In a child process with a bound: before the fix, reading the FIFO blocked forever.
    const script = join(t.sandbox.dir, 'load.mts');
    await writeFile(
      script,
      `import { loadConfig } from ${JSON.stringify(resolve(import.meta.dirname, '../../agent/src/config.ts'))};
try { loadConfig({ config: ${JSON.stringify(fifo)} }, {}); } catch (err) { console.log(err.message); }`,
    );
    const out = execFileSync(process.execPath, ['--import', 'tsx', script], {
      timeout: 15_000,
      encoding: 'utf8',
    });
    expect(out).toMatch(/config\.fifo is not a regular file/);
  });

  it('/dev/zero is refused without reading it (reading it never ends)', async () => {
    const result = await runAgent(['takeover', '-c', '/dev/zero']);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/\/dev\/zero is not a regular file/);
  });

  it('a directory is named as one', async () => {
    const result = await runAgent(['takeover', '-c', t.sandbox.dir]);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/is a directory; pass the path of the JSON file/);
  });

  it('a 6 MiB file is refused by its size', async () => {
    await writeFile(t.sandbox.configPath, Buffer.alloc(6 * 1024 * 1024, 0x20));
    const result = await t.agent(['takeover']);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/larger than 64 KiB/);
  });

  it('bytes that are not UTF-8 are refused, not read as U+FFFD into a path', async () => {
    const text = JSON.stringify(defaultConfig(t.sandbox));
    const at = text.indexOf('/state"') + 1;
    await writeFile(
      t.sandbox.configPath,
      Buffer.concat([
        Buffer.from(text.slice(0, at)),
        Buffer.from([0xff]),
        Buffer.from(text.slice(at)),
      ]),
    );
    const result = await t.agent(['takeover']);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/is not UTF-8 text; save it as UTF-8/);
    expect(t.world.mock.calls()).toHaveLength(0);
  });

  it('a BOM is still refused as before (not valid JSON)', async () => {
    await t.sandbox.writeConfig(`\ufeff${JSON.stringify(defaultConfig(t.sandbox))}`);
    const result = await t.agent(['takeover']);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/is not valid JSON/);
  });
});

describe('EC2 answers', () => {
  it('an attempt EC2 never answers is abandoned after 5 s and retried, not waited on all deadline', async () => {
    t.world.mock.restore(); // the real SDK client, against a loopback server
    const requests: number[] = [];
    const server = createServer(() => {
      requests.push(Date.now()); // and never answer
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    vi.stubEnv(
      'AWS_ENDPOINT_URL_EC2',
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    );
    const client = createEc2Client({
      region: 'eu-central-1',
      credentials: { accessKeyId: 'AKIDTESTONLY', secretAccessKey: 'test-secret-only' },
    });
    try {
      const gateway = new SdkEc2Gateway(client, pino({ level: 'silent' }), systemClock);
      const started = Date.now();
      const err = await gateway
        .describeAddresses([ALLOCATION_ID], new Deadline(systemClock, 6_500))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeadlineError);
      // Before the fix the SDK only warned at 5 s and the one attempt ran into the deadline.
      expect(requests.length).toBe(2);
      expect((requests[1] as number) - started).toBeGreaterThanOrEqual(4_900);
    } finally {
      client.destroy();
      vi.unstubAllEnvs();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  }, 20_000);
});

describe('an EC2 answer the agent cannot read is never acted on', () => {
  it('DescribeAddresses with half an association: exit 1, no mutating call', async () => {
    t.world.mock.on(DescribeAddressesCommand).resolves({
      Addresses: [
        {
          AllocationId: ALLOCATION_ID,
          PublicIp: '203.0.113.7',
          AssociationId: 'eipassoc-0123456789abcdef0',
          NetworkInterfaceId: 'eni-0bbbbbbbbbbbbbbb2',
        },
      ],
    });
    const takeover = await t.agent(['takeover']);
    expect(takeover.code).toBe(1);
    expect(oneLine(takeover.stderr)).toMatch(
      /allocation .* as associated but without its network interface/,
    );
    expect(t.world.mutatingCalls()).toEqual([]);
    // status says it could not tell, rather than "not associated".
    expect((await t.agent(['status'])).code).toBe(4);
  });

  it.each([
    ['no interface list', {}],
    [
      'an interface without its id',
      { NetworkInterfaces: [{ PrivateIpAddresses: [{ PrivateIpAddress: VIP }] }] },
    ],
    [
      'an interface without its addresses',
      { NetworkInterfaces: [{ NetworkInterfaceId: 'eni-0bbbbbbbbbbbbbbb2' }] },
    ],
    [
      'addresses without IPs',
      {
        NetworkInterfaces: [
          { NetworkInterfaceId: 'eni-0bbbbbbbbbbbbbbb2', PrivateIpAddresses: [{ Primary: false }] },
        ],
      },
    ],
  ])(
    'the VIP holder lookup answered with %s: exit 1, no AssignPrivateIpAddresses',
    async (_, answer) => {
      t.world.mock.on(DescribeNetworkInterfacesCommand).resolves(answer);
      const takeover = await t.agent(['takeover']);
      expect(takeover.code).toBe(1);
      expect(oneLine(takeover.stderr)).toMatch(
        /DescribeNetworkInterfaces answered without the interfaces or addresses needed to find who holds 10\.0\.0\.50/,
      );
      expect(t.world.mutatingCalls()).toEqual([]);
    },
  );

  it('an empty interface list is an answer: nobody holds the VIP, so it is assigned', async () => {
    t.world.mock.on(DescribeNetworkInterfacesCommand).resolves({ NetworkInterfaces: [] });
    await t.agent(['takeover']);
    expect(t.world.mutatingCalls()[0]).toBe('AssignPrivateIpAddressesCommand');
  });
});

describe('check reports every failure in its report', () => {
  it('cross-az: an unreadable answer describing this ENI is a FAIL line, not an unexpected error', async () => {
    await t.sandbox.writeConfig(
      defaultConfig(t.sandbox, { addresses: [{ allocationId: ALLOCATION_ID }] }),
    );
    t.world.mock.on(DescribeNetworkInterfacesCommand).resolves({});
    const result = await t.agent(['check']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(
      /^FAIL\s+permission AssociateAddress\s+DescribeNetworkInterfaces did not describe eni-/m,
    );
  });
});

describe('IMDS answers are parsed exactly', () => {
  it.each(['10.0.0.0/24/8', '10.0.0.0/33', '10.0.0/24', '10.0.0.0'])(
    'subnet-ipv4-cidr-block %j is refused',
    async (cidr) => {
      const base = fakeImds(t.world);
      const imds = {
        ...base,
        get: (path: string) =>
          path.endsWith('/subnet-ipv4-cidr-block') ? Promise.resolve(cidr) : base.get(path),
      };
      const result = await t.agent(['takeover'], { imds });
      expect(result.code).toBe(1);
      expect(oneLine(result.stderr)).toMatch(/IMDS returned an unexpected subnet-ipv4-cidr-block/);
      expect(t.world.mutatingCalls()).toEqual([]);
    },
  );
});

describe('the process', () => {
  it('stderr holds only log records: no SDK notice about the Node version', async () => {
    // Nothing here and no transition recorded: consistent, exit 0.
    const model = buildModel({ mode: 'same-subnet', eip: 'peer', vip: 'peer' });
    const ec2 = await startFakeEc2(model, []);
    const imds = await startImdsStub({ metadata: instanceMetadata(THIS_NODE, () => [VIP]) });
    try {
      await t.sandbox.writeConfig(
        defaultConfig(t.sandbox, {
          addresses: [{ allocationId: FUZZ_ALLOCATION_ID, privateIp: VIP }],
        }),
      );
      const main = resolve(import.meta.dirname, '../../agent/src/main.ts');
      const { code, stderr } = await new Promise<{ code: number; stderr: string }>((done) =>
        execFile(
          process.execPath,
          ['--import', 'tsx', main, 'status', '-c', t.sandbox.configPath],
          {
            env: {
              PATH: process.env.PATH ?? '',
              AWS_ENDPOINT_URL_EC2: ec2.endpoint,
              AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
              AWS_ACCESS_KEY_ID: 'AKIDTESTONLY',
              AWS_SECRET_ACCESS_KEY: 'test-secret-only',
            },
            timeout: 30_000,
          },
          (err, _stdout, stderr) => done({ code: err ? Number(err.code) : 0, stderr }),
        ),
      );
      expect(code, stderr).toBe(0);
      expect(ec2.records.length).toBeGreaterThan(0);
      const notLogs = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{"level":'));
      expect(notLogs).toEqual([]);
    } finally {
      await Promise.all([ec2.close(), imds.close()]);
    }
  }, 40_000);
});
