import { CONFIG_KEYS } from '../../agent/src/config.js';
import type { ConfigSpec, Expectation, Family, FuzzCase, Mode, WorldSpec } from './cases.js';
import { type Ec2Corruption, type Ec2Fault, errorDocument } from './ec2-fake.js';
import type { ImdsAnswer } from './imds-fake.js';
import { Rng } from './prng.js';
import { ALLOCATION_ID, alreadyHere, HERE, holdsAnyPart, ROLE, VIP } from './world.js';

/**
 * The generators: each case is a valid invocation with one targeted corruption (or none), and the
 * generator knows what the agent must do with it — the exit codes it may end with, what the
 * message must name, whether any API call may happen.
 */

type Command =
  | 'takeover'
  | 'takeover-dry'
  | 'reconcile'
  | 'notify-master'
  | 'notify-other'
  | 'release'
  | 'status'
  | 'status-json'
  | 'check';

const API_COMMANDS: readonly Command[] = [
  'takeover',
  'takeover-dry',
  'reconcile',
  'notify-master',
  'status',
  'status-json',
  'check',
];

const BASE = `network/interfaces/macs/${HERE.macAddress}`;
const DIR = '@DIR@';
const CONFIG = '@CONFIG@';
const STATE_DIR = `${DIR}/state`;
const INF = Number.POSITIVE_INFINITY;

interface Setup {
  readonly command: Command;
  readonly world: WorldSpec;
  readonly regionConfigured: boolean;
  readonly envCredentials: boolean;
  readonly recordedMaster: boolean;
}

function argvFor(command: Command, rng: Rng): string[] {
  switch (command) {
    case 'takeover':
      return ['takeover'];
    case 'takeover-dry':
      return ['takeover', '--dry-run'];
    case 'reconcile':
      return ['reconcile'];
    case 'notify-master':
      return ['notify', rng.pick(['INSTANCE', 'GROUP', 'instance']), 'VI_1', 'MASTER', '100'];
    case 'notify-other':
      return ['notify', 'INSTANCE', 'VI_1', rng.pick(['BACKUP', 'FAULT', 'STOP', 'DELETED'])];
    case 'release':
      return rng.chance(0.5) ? ['release'] : ['release', rng.pick(['BACKUP', 'FAULT', 'stop'])];
    case 'status':
      return ['status'];
    case 'status-json':
      return ['status', '--json'];
    case 'check':
      return ['check'];
  }
}

function randomWorld(rng: Rng, mode: Mode): WorldSpec {
  return {
    mode,
    eip: rng.pick(['peer', 'peer', 'here', 'none'] as const),
    vip: mode === 'same-subnet' ? rng.pick(['peer', 'peer', 'here', 'none'] as const) : 'none',
  };
}

function acts(s: Setup): boolean {
  return (
    s.command === 'takeover' ||
    s.command === 'notify-master' ||
    (s.command === 'reconcile' && s.recordedMaster)
  );
}

function usesApi(s: Setup): boolean {
  return acts(s) || ['takeover-dry', 'status', 'status-json', 'check'].includes(s.command);
}

/** The calls a healthy run of this setup makes: IMDS paths, and EC2 actions with their counts. */
export function planCalls(s: Setup): { imds: string[]; ec2: Map<string, number> } {
  const ec2 = new Map<string, number>();
  const add = (action: string) => ec2.set(action, (ec2.get(action) ?? 0) + 1);
  if (!usesApi(s)) return { imds: [], ec2 };
  const { world } = s;
  const same = world.mode === 'same-subnet';
  const imds = [
    'token',
    'instance-id',
    'placement/availability-zone',
    'mac',
    `${BASE}/interface-id`,
    `${BASE}/vpc-id`,
    `${BASE}/subnet-id`,
    `${BASE}/subnet-ipv4-cidr-block`,
  ];
  if (!s.regionConfigured) imds.push('placement/region');
  if (!s.envCredentials) imds.push('iam/security-credentials/', `iam/security-credentials/${ROLE}`);
  add('DescribeAddresses');
  add('DescribeNetworkInterfaces');
  if (s.command === 'check') {
    if (same) ec2.delete('DescribeNetworkInterfaces');
    add('AssociateAddress:DryRun');
  } else if (acts(s) && !alreadyHere(world)) {
    if (same) {
      if (world.vip !== 'here') {
        add('AssignPrivateIpAddresses');
        add('DescribeAddresses');
      }
      // The EIP moves with the VIP it is associated with; otherwise it needs AssociateAddress.
      const movesWithVip = world.vip === 'peer' && world.eip === 'peer';
      // The look after AssignPrivateIpAddresses already shows the EIP here: it is the verification.
      if (!movesWithVip) {
        add('AssociateAddress');
        add('DescribeAddresses');
      }
      imds.push(`${BASE}/local-ipv4s`);
    } else {
      add('AssociateAddress');
      add('DescribeAddresses');
    }
  }
  return { imds, ec2 };
}

/** Is the EIP associated when the nth DescribeAddresses of a healthy run is answered? */
function addressAssociatedAt(s: Setup, nth: number): boolean {
  if (nth === 1) return s.world.eip !== 'none';
  // Same-subnet: the second call is the look after AssignPrivateIpAddresses, when there was one.
  if (nth === 2 && s.world.mode === 'same-subnet' && s.world.vip !== 'here') {
    return s.world.eip !== 'none';
  }
  return true;
}

/** What a run that hits no fault ends with. */
function validExit(s: Setup): number[] {
  if (s.command === 'status' || s.command === 'status-json') {
    const consistent = s.recordedMaster ? alreadyHere(s.world) : !holdsAnyPart(s.world);
    return [consistent ? 0 : 1];
  }
  return [0];
}

/**
 * A well-formed interface name this host does not have: the agent finds out when it needs its
 * identity, before any API call, and fails that command (exit 1; status cannot tell: 4).
 */
function absentInterface(s: Setup): Expectation {
  if (!usesApi(s)) return { exit: validExit(s) };
  return {
    exit: s.command === 'status' || s.command === 'status-json' ? [4] : [1],
    noApiCall: true,
  };
}

const INTERFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/** What a run that meets a fault it cannot get past ends with. */
function failedExit(s: Setup): number[] {
  if (s.command === 'status' || s.command === 'status-json') return [4];
  if (s.command === 'check') return [1, 4];
  return [1];
}

function validConfig(rng: Rng, mode: Mode, regionConfigured: boolean): Record<string, unknown> {
  const config: Record<string, unknown> = {
    addresses: [
      { allocationId: ALLOCATION_ID, ...(mode === 'same-subnet' ? { privateIp: VIP } : {}) },
    ],
    deadlineSeconds: rng.pick([5, 10, 20]),
    stateDir: STATE_DIR,
  };
  if (regionConfigured) config.region = 'eu-central-1';
  if (rng.chance(0.3)) config.reclaimFromPeer = rng.chance(0.5);
  if (rng.chance(0.2)) config.retryMode = rng.pick(['standard', 'adaptive']);
  if (rng.chance(0.2)) config.logFile = `${DIR}/log/agent.log`;
  return config;
}

function randomSetup(rng: Rng, commands: readonly Command[] = API_COMMANDS): Setup {
  const mode = rng.pick(['same-subnet', 'cross-az'] as const);
  const command = rng.pick(commands);
  return {
    command,
    world: randomWorld(rng, mode),
    regionConfigured: rng.chance(0.6),
    envCredentials: rng.chance(0.5),
    recordedMaster: command === 'reconcile' ? rng.chance(0.8) : rng.chance(0.2),
  };
}

function baseCase(
  id: string,
  family: Family,
  s: Setup,
  rng: Rng,
  config: ConfigSpec,
  what: string,
  expect: Expectation,
  extra: Partial<FuzzCase> = {},
): FuzzCase {
  return {
    id,
    family,
    what,
    argv: [...argvFor(s.command, rng), '-c', CONFIG],
    config,
    envCredentials: s.envCredentials,
    world: s.world,
    ...(s.recordedMaster ? { recordedState: 'MASTER' as const } : {}),
    imdsFaults: [],
    ec2Faults: [],
    expect,
    ...extra,
  };
}

const text = (config: unknown): ConfigSpec => ({ kind: 'text', text: JSON.stringify(config) });
const usage = (names: string[]): Expectation => ({ exit: [2], names, noApiCall: true });

// ---------------------------------------------------------------------------------------------
// 1. The command line

const DEADLINES_OK = ['5', '20', '3600', '0020'];
const DEADLINES_BAD = [
  '-1',
  '0',
  '4',
  '3601',
  'NaN',
  '1e3',
  '0x10',
  ' 10',
  '10s',
  '',
  '99999999999999999999',
  'Infinity',
  '5.5',
  '+10',
  '٣٠',
  '-0',
];

function hugeString(rng: Rng): string {
  // Below Linux's 128 KiB limit for one argument, so the process sample can pass it too.
  return rng.chars('abcdefghij-0123456789', rng.int(10_000, 120_000));
}

export function cliCase(id: string, rng: Rng): FuzzCase {
  const s0 = randomSetup(rng, [...API_COMMANDS, 'release', 'notify-other']);
  const s = { ...s0, regionConfigured: true };
  const config = text(validConfig(rng, s.world.mode, true));
  const make = (argv: string[], what: string, expect: Expectation, setup: Setup = s) =>
    baseCase(id, 'cli', setup, rng, config, what, expect, { argv });
  const argv = [...argvFor(s.command, rng), '-c', CONFIG];
  // Right after the command name, or at the end: never between an option and its value.
  const insert = (extra: string[]) =>
    rng.chance(0.5) ? [argv[0] as string, ...extra, ...argv.slice(1)] : [...argv, ...extra];
  const withOption = (flag: string, value: string) => [...argv, flag, value];

  const kind = rng.weighted<string>([
    [10, 'valid'],
    [6, 'unknownCommand'],
    [6, 'unknownOption'],
    [5, 'missingValue'],
    [10, 'deadline'],
    [6, 'allocationId'],
    [5, 'privateIp'],
    [5, 'region'],
    [4, 'interface'],
    [4, 'paths'],
    [3, 'missingConfig'],
    [6, 'notify'],
    [4, 'release'],
    [4, 'huge'],
    [3, 'beforeCommand'],
    [3, 'help'],
    [1, 'empty'],
  ]);
  switch (kind) {
    case 'valid': {
      const extra: string[] = [];
      if (rng.chance(0.5)) extra.push('--deadline', rng.pick(DEADLINES_OK));
      if (rng.chance(0.3)) extra.push('--state-dir', `${DIR}/state2`);
      if (rng.chance(0.3)) extra.push('--region', rng.pick(['eu-central-1', 'us-east-1']));
      if (rng.chance(0.2)) extra.push('--allocation-id', ALLOCATION_ID);
      // The last of a repeated option wins.
      if (rng.chance(0.2)) extra.push('--deadline', 'x', '--deadline', '20');
      let setup: Setup = s;
      if (extra.includes('--allocation-id') && s.world.mode === 'same-subnet') {
        // --allocation-id alone replaces the file's addresses: cross-az mode, no VIP.
        setup = { ...setup, world: randomWorld(rng, 'cross-az') };
      }
      // Another state dir holds no recorded MASTER.
      if (extra.includes('--state-dir')) setup = { ...setup, recordedMaster: false };
      return make([...argv, ...extra], 'valid options', { exit: validExit(setup) }, setup);
    }
    case 'unknownCommand': {
      const word = rng.pick(['takeover2', 'TAKEOVER', 'stat', 'fifos', 'rm', rng.junk(12) || 'x']);
      const known = ['takeover', 'release', 'notify', 'reconcile', 'status', 'check', 'help'];
      if (known.includes(word)) return make(['help'], 'help', { exit: [0] });
      return make([word, ...argv.slice(1)], `unknown command ${JSON.stringify(word)}`, {
        exit: [2],
        noApiCall: true,
        names: word.startsWith('-') ? ['unknown option'] : ['unknown command'],
      });
    }
    case 'unknownOption': {
      const flag = rng.pick([
        '--bogus',
        '--dryrun',
        '--allocation_id',
        '-x',
        '--Deadline',
        `--${rng.chars('abcxyz', 6)}`,
      ]);
      return make(insert([flag]), `unknown option ${flag}`, usage([flag, 'unknown option']));
    }
    case 'missingValue': {
      const flag = rng.pick([
        '--deadline',
        '--allocation-id',
        '--private-ip',
        '--region',
        '--state-dir',
        '--log-file',
        '--interface',
        '-c',
      ]);
      return make([...argv, flag], `${flag} without a value`, usage([flag]));
    }
    case 'deadline': {
      const value = rng.pick(DEADLINES_BAD);
      return make(
        withOption('--deadline', value),
        `--deadline ${JSON.stringify(value)}`,
        usage(['--deadline']),
      );
    }
    case 'allocationId': {
      const value = rng.pick([
        'eipalloc-XYZ',
        'eipalloc-0123456789ABCDEF0',
        'eipalloc-0123456789abcdef',
        `eipalloc-${rng.hex(8)}\n`,
        ` ${ALLOCATION_ID}`,
        'eipassoc-0123456789abcdef0',
        rng.junk(30),
        '',
      ]);
      return make(
        withOption('--allocation-id', value),
        `--allocation-id ${JSON.stringify(value)}`,
        usage(['--allocation-id']),
      );
    }
    case 'privateIp': {
      const value = rng.pick([
        '10.0.0.256',
        '::1',
        '10.0.0',
        'localhost',
        '010.0.0.50',
        '10.0.0.50/32',
        rng.junk(20),
        '',
      ]);
      const flags = rng.chance(0.5) ? ['--allocation-id', ALLOCATION_ID] : [];
      return make(
        [...argv, ...flags, '--private-ip', value],
        `--private-ip ${JSON.stringify(value)}`,
        usage(['--private-ip']),
      );
    }
    case 'region': {
      const value = rng.pick([
        'EU-CENTRAL-1',
        'eu-central',
        'eu-central-1\n',
        'eu_central_1',
        '../../etc',
        rng.junk(20),
        '',
      ]);
      return make(
        withOption('--region', value),
        `--region ${JSON.stringify(value)}`,
        usage(['--region', 'region']),
      );
    }
    case 'interface': {
      const value = rng.pick([
        'ethfuzz9',
        'a-very-long-interface-name',
        'eth0/../x',
        '',
        rng.junk(10),
      ]);
      if (INTERFACE_NAME.test(value)) {
        return make(
          withOption('--interface', value),
          `--interface ${value} (absent)`,
          absentInterface(s),
        );
      }
      return make(
        withOption('--interface', value),
        `--interface ${JSON.stringify(value)}`,
        usage(['interface']),
      );
    }
    case 'paths': {
      const [flag, key] = rng.pick([
        ['--state-dir', 'stateDir'],
        ['--log-file', 'logFile'],
      ] as const);
      const value = rng.pick(['relative/dir', './x', '', '~/x', rng.junk(10).replace(/^\/+/, '')]);
      return make(withOption(flag, value), `${flag} ${JSON.stringify(value)}`, usage([flag, key]));
    }
    case 'missingConfig': {
      const path = rng.pick([`${DIR}/nope.json`, `${DIR}/state/missing/config.json`]);
      return make(
        [...argvFor(s.command, rng), '-c', path],
        'config path that does not exist',
        usage(['does not exist']),
      );
    }
    case 'notify': {
      const variant = rng.pick(['few', 'many', 'type', 'state', 'priority', 'name']);
      if (variant === 'few') {
        const args = ['INSTANCE', 'VI_1', 'MASTER'].slice(0, rng.int(0, 2));
        return make(
          ['notify', ...args, '-c', CONFIG],
          `notify with ${args.length} arguments`,
          usage(['missing required argument']),
        );
      }
      if (variant === 'many') {
        return make(
          ['notify', 'INSTANCE', 'VI_1', 'MASTER', '100', 'extra', '-c', CONFIG],
          'notify with 5 arguments',
          usage(['too many arguments']),
        );
      }
      if (variant === 'type' || variant === 'state') {
        const junk = rng.pick(['VRRP', 'master?', rng.junk(15), '']);
        const args = variant === 'type' ? [junk, 'VI_1', 'MASTER'] : ['INSTANCE', 'VI_1', junk];
        return make(
          ['notify', ...args, '-c', CONFIG],
          `notify ${variant} ${JSON.stringify(junk)}`,
          usage(['notify']),
        );
      }
      // The priority and the name are keepalived's to choose: anything goes.
      const master = rng.chance(0.5);
      const setup = {
        ...s,
        command: master ? ('notify-master' as const) : ('notify-other' as const),
      };
      const state = master ? 'MASTER' : 'BACKUP';
      const args =
        variant === 'priority'
          ? ['INSTANCE', 'VI_1', state, rng.pick(['-5', 'NaN', rng.junk(12), '999999999999'])]
          : ['GROUP', rng.junk(30) || 'g', state];
      return make(
        ['notify', ...args, '-c', CONFIG],
        `notify with any ${variant}`,
        { exit: validExit(setup) },
        setup,
      );
    }
    case 'release': {
      const state = rng.pick(['MASTER', 'UNKNOWN', 'backup2', rng.junk(15), '']);
      return make(
        ['release', state, '-c', CONFIG],
        `release ${JSON.stringify(state)}`,
        usage(['release']),
      );
    }
    case 'huge': {
      const [flag, name] = rng.pick([
        ['--allocation-id', '--allocation-id'],
        ['--region', '--region'],
        ['--interface', 'interface'],
        ['--deadline', '--deadline'],
        ['--private-ip', '--private-ip'],
        ['--state-dir', 'stateDir'],
      ] as const);
      const value = hugeString(rng);
      return make(
        withOption(flag, value),
        `${flag} with a ${value.length}-character value`,
        usage([name]),
      );
    }
    case 'beforeCommand': {
      const flag = rng.pick(['--deadline', '--region', '-c']);
      return make([flag, '5', ...argv], `${flag} before the command`, usage(['unknown option']));
    }
    case 'help': {
      const args = rng.pick([
        ['--help'],
        ['-h'],
        ['--version'],
        ['-V'],
        ['help'],
        ['help', 'takeover'],
        ['status', '--help'],
      ]);
      return make(args, `help ${args.join(' ')}`, { exit: [0] });
    }
    default:
      return make([], 'no arguments', usage(['command']));
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The config file

const WRONG_VALUES: ReadonlyArray<readonly [string, unknown]> = [
  ['number', 42],
  ['negative', -1],
  ['float', 2.5],
  ['string', 'yes'],
  ['empty string', ''],
  ['true', true],
  ['false', false],
  ['array', [1, 2]],
  ['empty array', []],
  ['object', { a: 1 }],
  ['empty object', {}],
];

/** Deeply nested arrays, as JSON text (JSON.stringify would recurse on them). */
function deepJson(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

interface KeyRule {
  /** Is this value valid for the key? */
  valid(value: unknown): boolean;
  names: string[];
}

const KEY_RULES: Record<string, KeyRule> = {
  addresses: { valid: () => false, names: ['addresses', 'address'] },
  interface: { valid: (v) => v === null, names: ['interface'] },
  region: { valid: (v) => v === null, names: ['region'] },
  deadlineSeconds: {
    valid: (v) =>
      v === null || (Number.isInteger(v) && (v as number) >= 5 && (v as number) <= 3600),
    names: ['deadline'],
  },
  stateDir: { valid: () => false, names: ['stateDir'] },
  logFile: { valid: (v) => v === null, names: ['logFile'] },
  reclaimFromPeer: {
    valid: (v) => v === null || typeof v === 'boolean',
    names: ['reclaimFromPeer'],
  },
  retryMode: {
    valid: (v) => v === null || v === 'standard' || v === 'adaptive',
    names: ['retryMode'],
  },
};

export function configCase(id: string, rng: Rng): FuzzCase {
  const s0 = randomSetup(rng, [...API_COMMANDS, 'release']);
  const s = { ...s0, regionConfigured: rng.chance(0.7) };
  const config = validConfig(rng, s.world.mode, s.regionConfigured);
  const make = (spec: ConfigSpec, what: string, expect: Expectation, setup: Setup = s) =>
    baseCase(id, 'config', setup, rng, spec, what, expect);
  const valid = JSON.stringify(config, null, rng.pick([0, 2]));

  const kind = rng.weighted<string>([
    [6, 'valid'],
    [12, 'syntax'],
    [20, 'wrongType'],
    [10, 'addressEntry'],
    [8, 'unknownKey'],
    [4, 'bigArray'],
    [3, 'deep'],
    [3, 'huge'],
    [6, 'notUtf8'],
    [4, 'special'],
  ]);
  switch (kind) {
    case 'valid': {
      const variant = { ...config };
      if (rng.chance(0.3)) variant.region = null;
      if (rng.chance(0.3)) variant.interface = null;
      if (rng.chance(0.3)) variant.deadlineSeconds = rng.pick([5, 3600, null]);
      const setup = { ...s, regionConfigured: variant.region === 'eu-central-1' };
      // Duplicate keys: JSON's last one wins.
      const body = rng.chance(0.2)
        ? JSON.stringify(variant).replace('{', '{"deadlineSeconds":"first",')
        : JSON.stringify(variant, null, 2);
      return make({ kind: 'text', text: body }, 'valid config', { exit: validExit(setup) }, setup);
    }
    case 'syntax': {
      const variant = rng.pick([
        'truncate',
        'trailingComma',
        'bom',
        'singleQuotes',
        'comment',
        'nan',
        'empty',
        'scalar',
        'controlChar',
        'garbage',
      ]);
      const broken: Record<string, () => string> = {
        truncate: () => valid.slice(0, rng.int(0, valid.length - 1)),
        trailingComma: () => valid.replace(/}$/, ',}'),
        bom: () => `\ufeff${valid}`,
        singleQuotes: () => valid.replace(/"/g, "'"),
        comment: () => `// rendered by ansible\n${valid}`,
        nan: () => valid.replace(/"deadlineSeconds":\s*\d+/, '"deadlineSeconds": NaN'),
        empty: () => rng.pick(['', ' ', '\n\n']),
        scalar: () => rng.pick(['null', '[]', '"config"', '42', 'true', '[{"addresses": []}]']),
        controlChar: () => valid.replace('/state"', '/st\u0001ate"'),
        garbage: () => rng.junk(200),
      };
      const body = (broken[variant] as () => string)();
      return make({ kind: 'text', text: body }, `syntax: ${variant}`, usage(['JSON']));
    }
    case 'wrongType': {
      const key = rng.pick([...CONFIG_KEYS]);
      const rule = KEY_RULES[key] as KeyRule;
      const [label, value] = rng.chance(0.1) ? (['null', null] as const) : rng.pick(WRONG_VALUES);
      if (key === 'stateDir' && value === null) {
        // null means "the default", /run/eip-failover: never write there from a test.
        return make(
          text({ ...config, stateDir: 'relative' }),
          'stateDir relative',
          usage(['stateDir']),
        );
      }
      const next = { ...config, [key]: value };
      const setup = {
        ...s,
        regionConfigured: key === 'region' ? false : s.regionConfigured,
      };
      if (key === 'interface' && typeof value === 'string' && INTERFACE_NAME.test(value)) {
        return make(
          text(next),
          `interface ${JSON.stringify(value)} (absent)`,
          absentInterface(setup),
          setup,
        );
      }
      return make(
        text(next),
        `${key}: ${label}`,
        rule.valid(value) ? { exit: validExit(setup) } : usage(rule.names),
        setup,
      );
    }
    case 'addressEntry':
      return addressEntryCase(rng, s, config, make);
    case 'unknownKey': {
      const key = rng.pick([
        'adresses',
        'Region',
        '',
        '__proto__',
        'constructor',
        'toString',
        'deadline',
        'state_dir',
        'é',
        'key\nwith newline',
        rng.junk(20),
        'k'.repeat(rng.int(1_000, 30_000)),
      ]);
      return make(
        { kind: 'text', text: valid.replace('{', `{${JSON.stringify(key)}: 1, `) },
        `unknown key ${JSON.stringify(key.slice(0, 40))}`,
        usage(['unknown key']),
      );
    }
    case 'bigArray': {
      const n = rng.int(2, 1_500);
      const entry = (config.addresses as unknown[])[0];
      const duplicates = rng.chance(0.5);
      const entries: unknown[] = Array.from({ length: n }, (_, i) =>
        duplicates ? entry : { allocationId: `eipalloc-${i.toString(16).padStart(17, '0')}` },
      );
      if (!duplicates) entries[rng.int(0, n - 1)] = { allocationId: 'eipalloc-bad' };
      const body = JSON.stringify({ ...config, addresses: entries });
      if (Buffer.byteLength(body) > 64 * 1024) {
        return make({ kind: 'text', text: body }, `${n} addresses, over 64 KiB`, usage(['KiB']));
      }
      return make(
        { kind: 'text', text: body },
        `${n} addresses, ${duplicates ? 'all the same' : 'one malformed'}`,
        usage(['addresses[']),
      );
    }
    case 'deep': {
      const depth = rng.int(1_000, 30_000);
      const key = rng.pick([
        'addresses',
        'deadlineSeconds',
        'region',
        'reclaimFromPeer',
        'allocationId',
      ]);
      const body =
        key === 'allocationId'
          ? valid.replace(`"${ALLOCATION_ID}"`, deepJson(depth))
          : JSON.stringify({ ...config, [key]: '@DEEP@' }).replace('"@DEEP@"', deepJson(depth));
      const names: Record<string, string[]> = {
        allocationId: ['addresses[0]'],
        addresses: ['addresses'],
        deadlineSeconds: ['deadline'],
        region: ['region'],
        reclaimFromPeer: ['reclaimFromPeer'],
      };
      return make(
        { kind: 'text', text: body },
        `${key} nested ${depth} deep`,
        usage(names[key] ?? [key]),
      );
    }
    case 'huge': {
      const bytes = rng.pick([64 * 1024 + 1, 200_000, 3 * 1024 * 1024, 6 * 1024 * 1024]);
      return make(
        { kind: 'huge', bytes, valid: rng.chance(0.5) },
        `a ${bytes}-byte file`,
        usage(['KiB']),
      );
    }
    case 'notUtf8': {
      const invalid = rng.pick([
        [0xff],
        [0xc3],
        [0xe9],
        [0xed, 0xa0, 0x80],
        [0xf8, 0x88, 0x80, 0x80, 0x80],
        [0xc0, 0xaf],
      ]);
      // Inside a string (read as U+FFFD, the agent would use a path nobody wrote) or between tokens.
      const where = rng.pick(['stateDir', 'key', 'between']);
      const json = JSON.stringify(config);
      const at =
        where === 'stateDir'
          ? json.indexOf('/state"') + 1
          : where === 'key'
            ? json.indexOf('"deadlineSeconds"') + 2
            : json.indexOf(',') + 1;
      const bytes = Buffer.concat([
        Buffer.from(json.slice(0, at)),
        Buffer.from(invalid),
        Buffer.from(json.slice(at)),
      ]);
      return make(
        { kind: 'bytes', base64: bytes.toString('base64') },
        `bytes ${invalid.map((b) => b.toString(16)).join(' ')} (not UTF-8) in ${where}`,
        usage(['UTF-8']),
      );
    }
    default: {
      const variant = rng.pick(['directory', 'fifo', 'devnull', 'devzero', 'proc', 'notDirectory']);
      const spec: Record<string, [ConfigSpec, string[]]> = {
        directory: [{ kind: 'directory' }, ['directory']],
        fifo: [{ kind: 'fifo' }, ['regular file']],
        devnull: [{ kind: 'path', path: '/dev/null' }, ['regular file']],
        devzero: [{ kind: 'path', path: '/dev/zero' }, ['regular file']],
        proc: [{ kind: 'path', path: '/proc/self/status' }, ['JSON']],
        // A path through a file (ENOTDIR): unreadable whoever runs it, root included.
        notDirectory: [{ kind: 'path', path: '/proc/self/status/config.json' }, ['cannot read']],
      };
      const [config2, names] = spec[variant] as [ConfigSpec, string[]];
      return make(config2, `config is ${variant}`, usage(names));
    }
  }
}

function addressEntryCase(
  rng: Rng,
  s: Setup,
  config: Record<string, unknown>,
  make: (spec: ConfigSpec, what: string, expect: Expectation, setup?: Setup) => FuzzCase,
): FuzzCase {
  const entry = (config.addresses as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
  const withEntry = (e: unknown) => text({ ...config, addresses: [e] });
  switch (
    rng.pick([
      'notObject',
      'allocationId',
      'privateIp',
      'unknownKey',
      'duplicate',
      'privateIpNull',
      'outsideSubnet',
    ])
  ) {
    case 'notObject':
      return make(
        withEntry(rng.pick<unknown>([ALLOCATION_ID, 1, null, [entry]])),
        'address entry not an object',
        usage(['addresses[0]']),
      );
    case 'allocationId':
      return make(
        withEntry({
          ...entry,
          allocationId: rng.pick<unknown>([
            42,
            '',
            'eipalloc-XYZ',
            null,
            [ALLOCATION_ID],
            rng.junk(20),
          ]),
        }),
        'allocationId wrong',
        usage(['addresses[0]']),
      );
    case 'privateIp':
      return make(
        withEntry({
          ...entry,
          privateIp: rng.pick<unknown>([42, '', '10.0.0.256', '::1', true, [VIP], rng.junk(16)]),
        }),
        'privateIp wrong',
        usage(['addresses[0]']),
      );
    case 'unknownKey':
      return make(
        withEntry({ ...entry, [rng.pick(['allocationID', 'vip', 'publicIp', ''])]: 'x' }),
        'unknown key in an address',
        usage(['addresses[0]']),
      );
    case 'duplicate':
      return make(
        text({ ...config, addresses: [entry, entry] }),
        'address listed twice',
        usage(['addresses[1]']),
      );
    case 'privateIpNull': {
      // A null privateIp is cross-az mode: valid, against a cross-az world.
      const setup = { ...s, world: randomWorld(rng, 'cross-az') };
      return make(
        withEntry({ allocationId: ALLOCATION_ID, privateIp: null }),
        'privateIp null (cross-az)',
        { exit: validExit(setup) },
        setup,
      );
    }
    default: {
      // A well-formed VIP outside this node's subnet: found once IMDS answers, so exit 1, not 2.
      const setup = {
        ...s,
        world: randomWorld(rng, 'same-subnet'),
        command: rng.pick(['takeover', 'takeover-dry', 'check'] as const),
      };
      return make(
        withEntry({ allocationId: ALLOCATION_ID, privateIp: '192.168.7.50' }),
        'VIP outside the subnet',
        { exit: [1] },
        setup,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. IMDS answers

interface ImdsPlan {
  readonly answer: ImdsAnswer;
  readonly count: number;
  /** The agent must get past it (retried away, refreshed, trimmed, in time). */
  readonly benign: boolean;
  readonly slow?: boolean;
  readonly what: string;
}

function transientImds(rng: Rng, target: string, answer: ImdsAnswer, what: string): ImdsPlan {
  // The client makes three attempts: two failures are retried away, three are final. The
  // credentials may be fetched by two EC2 calls at once, which share the failures: only "every
  // time" is final there.
  const counts = target.startsWith('iam/') ? [1, 2, INF] : [1, 2, 3, INF];
  const count = rng.pick(counts);
  return { answer, count, benign: count <= 2, what: `${what} ×${count}` };
}

/** A wrong value for a metadata path; benign when the agent may take it (whitespace it trims). */
function imdsContent(rng: Rng, target: string): { body: string; benign: boolean; what: string } {
  const good: Record<string, string> = {
    'instance-id': HERE.instanceId,
    'placement/availability-zone': HERE.availabilityZone,
    'placement/region': HERE.region,
    mac: HERE.macAddress,
    [`${BASE}/interface-id`]: HERE.networkInterfaceId,
    [`${BASE}/vpc-id`]: HERE.vpcId,
    [`${BASE}/subnet-id`]: HERE.subnetId,
    [`${BASE}/subnet-ipv4-cidr-block`]: HERE.subnetCidr,
  };
  const wrong: Record<string, string[]> = {
    'instance-id': ['i-XYZ', 'instance', 'i-0aaaaaaaaaaaaaaa1 i-0bbbbbbbbbbbbbbb2'],
    'placement/availability-zone': ['eu central 1a', 'a', 'EU-CENTRAL-1A'],
    'placement/region': ['EU-CENTRAL-1', 'eu-central', 'us-east-1; rm -rf /', '{"region":1}'],
    mac: [
      '0A:00:00:00:00:A1',
      '0a-00-00-00-00-a1',
      '0a:00:00:00:00',
      '0a:00:00:00:00:a1/',
      '../../../iam',
    ],
    [`${BASE}/interface-id`]: ['eni-XYZ', 'eni-', 'interface'],
    [`${BASE}/vpc-id`]: ['vpc-XYZ', 'vpc'],
    [`${BASE}/subnet-id`]: ['subnet-XYZ', 'subnet'],
    [`${BASE}/subnet-ipv4-cidr-block`]: [
      '10.0.0.0/33',
      '10.0.0/24',
      '10.0.0.0',
      'fe80::/64',
      '10.0.0.0/24/8',
      '10.0.0.0/ 24',
    ],
    'iam/security-credentials/': ['', 'role with spaces', '{"role": 1}', 'x'.repeat(200)],
    [`iam/security-credentials/${ROLE}`]: [
      'not json',
      '{"Code":"Failure","Message":"no"}',
      '{"Code":"Success","AccessKeyId":"ASIA"}',
      '{"Code":"Success","AccessKeyId":1,"SecretAccessKey":2,"Token":3}',
      '[]',
      'null',
    ],
    [`${BASE}/local-ipv4s`]: [
      '10.0.0.11\nnot-an-ip',
      '10.0.0.11,10.0.0.50',
      '10.0.0.50/32',
      '10.0.0.011',
    ],
  };
  const value = good[target];
  if (value !== undefined && rng.chance(0.2)) {
    // IMDS values carry no whitespace, but a trailing newline is harmless and trimmed.
    return { body: `${value}\n`, benign: true, what: 'value with a trailing newline' };
  }
  const body = rng.chance(0.15) ? rng.junk(60) : rng.pick(wrong[target] ?? ['garbage']);
  if (body.trim() === (value ?? '\0')) return { body, benign: true, what: 'the right value' };
  return { body, benign: false, what: `content ${JSON.stringify(body.slice(0, 40))}` };
}

/** A setup whose command asks IMDS and EC2 (reconcile does only on a recorded MASTER). */
function apiSetup(rng: Rng): Setup {
  const s = randomSetup(rng);
  return s.command === 'reconcile' ? { ...s, recordedMaster: true } : s;
}

export function imdsCase(id: string, rng: Rng): FuzzCase {
  const s = apiSetup(rng);
  const config = validConfig(rng, s.world.mode, s.regionConfigured);
  const { imds: paths } = planCalls(s);
  const target = rng.pick(paths);
  const isToken = target === 'token';
  const local = target.endsWith('/local-ipv4s');
  const kind = rng.weighted<string>([
    [14, 'content'],
    [6, 'empty'],
    [4, 'oversized'],
    [10, 'status'],
    [4, 'unauthorized'],
    [6, 'reset'],
    [5, 'closeMidBody'],
    [5, 'slow'],
    [0.5, 'hang'],
    [3, 'expired'],
    [3, 'cidrElsewhere'],
  ]);
  let plan: ImdsPlan;
  switch (kind) {
    case 'content': {
      if (isToken) {
        const body = rng.pick(['', 'token with spaces', 'x'.repeat(2000), 'tok\nen', rng.junk(30)]);
        const ok = /^[\x21-\x7e]{1,1024}$/.test(body);
        plan = {
          answer: { kind: 'body', status: 200, body },
          count: 1,
          benign: ok,
          what: `token ${JSON.stringify(body.slice(0, 30))}`,
        };
      } else {
        const c = imdsContent(rng, target);
        plan = {
          answer: { kind: 'body', status: 200, body: c.body },
          count: rng.pick([1, INF]),
          benign: c.benign,
          what: c.what,
        };
      }
      break;
    }
    case 'empty': {
      const count = rng.pick([1, INF]);
      // An empty local-ipv4s is "not yet": polling sees the next answer; forever, the deadline ends it.
      plan = {
        answer: { kind: 'body', status: 200, body: '' },
        count,
        benign: local && count === 1,
        ...(local && count > 1 ? { slow: true } : {}),
        what: `empty ×${count}`,
      };
      break;
    }
    case 'oversized':
      plan = transientImds(
        rng,
        target,
        { kind: 'oversized', bytes: rng.int(64 * 1024 + 1, 1024 * 1024) },
        'oversized body',
      );
      break;
    case 'status': {
      const status = rng.pick([403, 404, 400, 500, 502, 503, 429]);
      const body = rng.pick(['', 'Not Found', rng.junk(80), '<html>error</html>']);
      plan =
        status >= 500 || status === 429
          ? transientImds(rng, target, { kind: 'body', status, body }, `status ${status}`)
          : {
              answer: { kind: 'body', status, body },
              count: rng.pick([1, INF]),
              benign: false,
              what: `status ${status}`,
            };
      break;
    }
    case 'unauthorized': {
      // A 401 to a GET: one fresh token and one more try. Twice in a row is final.
      const count = isToken ? 1 : rng.pick([1, 2]);
      plan = {
        answer: { kind: 'body', status: 401, body: '' },
        count,
        benign: !isToken && count === 1,
        what: `401 ×${count}`,
      };
      break;
    }
    case 'reset':
      plan = transientImds(rng, target, { kind: 'reset' }, 'connection reset');
      break;
    case 'closeMidBody':
      plan = transientImds(rng, target, { kind: 'closeMidBody' }, 'closed mid-body');
      break;
    case 'slow': {
      const ms = rng.int(20, 300);
      plan = { answer: { kind: 'slow', ms }, count: 1, benign: true, what: `${ms} ms late` };
      break;
    }
    case 'hang': {
      const count = rng.pick([1, 3]);
      plan = {
        answer: { kind: 'hang' },
        count,
        benign: count === 1,
        slow: true,
        what: `no answer ×${count}`,
      };
      break;
    }
    case 'expired': {
      // Expired instance-profile credentials: IMDS still serves them, EC2 refuses them.
      const setup = { ...s, envCredentials: false };
      return baseCase(
        id,
        'imds',
        setup,
        rng,
        text(config),
        'expired instance-profile credentials',
        { exit: failedExit(setup) },
        { expiredCredentials: true },
      );
    }
    default: {
      // A well-formed subnet that does not hold the VIP: a topology error, found before any move.
      const world = randomWorld(rng, 'same-subnet');
      const setup = { ...s, world };
      const status = setup.command === 'status' || setup.command === 'status-json';
      return baseCase(
        id,
        'imds',
        setup,
        rng,
        text(validConfig(rng, 'same-subnet', s.regionConfigured)),
        'subnet-ipv4-cidr-block 192.168.0.0/24',
        { exit: status ? validExit(setup) : [1] },
        {
          imdsFaults: [
            {
              target: `${BASE}/subnet-ipv4-cidr-block`,
              count: INF,
              answer: { kind: 'body', status: 200, body: '192.168.0.0/24' },
            },
          ],
        },
      );
    }
  }
  return baseCase(
    id,
    'imds',
    s,
    rng,
    text(config),
    `${target}: ${plan.what}`,
    { exit: plan.benign ? validExit(s) : failedExit(s), ...(plan.slow ? { slow: true } : {}) },
    { imdsFaults: [{ target, count: plan.count, answer: plan.answer }] },
  );
}

// ---------------------------------------------------------------------------------------------
// 4. EC2 answers

const ODD_CODES = [
  '',
  'Unknown',
  'InvalidParameterValue',
  'UnauthorizedOperation',
  'InvalidAllocationID.NotFound',
  'AuthFailure',
  'OptInRequired',
  'Blocked',
  'DryRunOperation',
  'Weird.Code.With.Dots',
  'code with spaces',
  'C'.repeat(500),
  'Ünïcödé',
  '<script>',
];
const THROTTLE_CODES = ['RequestLimitExceeded', 'Throttling', 'ThrottlingException'];

interface Ec2Plan {
  readonly corruption: Ec2Corruption;
  readonly count: number;
  readonly unparseable: boolean;
  readonly benign: boolean;
  readonly slow?: boolean;
  readonly what: string;
}

/** Fields per action: [tag, whether the answer is unreadable without it] as this mode asks. */
function fieldsOf(action: string, mode: Mode): Array<readonly [string, boolean]> {
  switch (action) {
    case 'DescribeAddresses':
      return [
        ['allocationId', true],
        ['publicIp', true],
        ['addressesSet', true],
        ['item', true],
        // An association half-described cannot be read; instanceId alone is optional.
        ['networkInterfaceId', true],
        ['privateIpAddress', true],
        ['associationId', false],
        ['instanceId', false],
        ['domain', false],
        ['networkBorderGroup', false],
      ];
    case 'DescribeNetworkInterfaces':
      return [
        ['networkInterfaceSet', true],
        ['networkInterfaceId', true],
        ['privateIpAddress', true],
        // The VIP's holder needs the list; describing this ENI falls back to its primary IP.
        ['privateIpAddressesSet', mode === 'same-subnet'],
        ['primary', false],
        ['availabilityZone', false],
        ['subnetId', false],
        ['status', false],
      ];
    case 'AssignPrivateIpAddresses':
      return [
        ['return', false],
        ['assignedPrivateIpAddressesSet', false],
        ['requestId', false],
      ];
    default:
      return [
        ['return', false],
        ['associationId', false],
        ['requestId', false],
      ];
  }
}

export function ec2Case(id: string, rng: Rng): FuzzCase {
  const s = apiSetup(rng);
  const config = validConfig(rng, s.world.mode, s.regionConfigured);
  const { ec2 } = planCalls(s);
  const [action, calls] = rng.pick([...ec2.entries()]);
  const nth = rng.int(1, calls);
  const dryRunCall = action === 'AssociateAddress:DryRun';
  const realAction = action.replace(':DryRun', '');
  const mutating = !dryRunCall && realAction.startsWith('A');
  /** Does the fake's answer to this call, in this world, hold the element at all? */
  const present = (field: string): boolean => {
    if (realAction === 'DescribeAddresses') {
      const association = ['networkInterfaceId', 'privateIpAddress', 'associationId', 'instanceId'];
      return !association.includes(field) || addressAssociatedAt(s, nth);
    }
    if (realAction === 'DescribeNetworkInterfaces' && s.world.mode === 'same-subnet') {
      // The VIP's holder: an empty set when nobody holds it.
      return field === 'networkInterfaceSet' || s.world.vip !== 'none';
    }
    return true;
  };
  const once = (corruption: Ec2Corruption, unparseable: boolean, what: string): Ec2Plan => ({
    corruption,
    count: 1,
    unparseable,
    benign: !unparseable,
    what,
  });

  const kind = rng.weighted<string>([
    [8, 'truncate'],
    [3, 'empty'],
    [3, 'wrongRoot'],
    [4, 'foreignDocument'],
    [4, 'notXml'],
    [14, 'dropField'],
    [5, 'duplicate'],
    [5, 'wrongType'],
    [3, 'extraElements'],
    [2, 'huge'],
    [14, 'status'],
    [5, 'reset'],
    [4, 'resetMidBody'],
    [3, 'delay'],
    [0.3, 'hang'],
  ]);
  let plan: Ec2Plan;
  switch (kind) {
    case 'truncate': {
      const at = rng.float();
      plan = once({ kind: 'truncate', at }, true, `truncated at ${(at * 100).toFixed(0)}%`);
      break;
    }
    case 'empty':
      plan = once({ kind: 'empty' }, !mutating, 'an empty 200');
      break;
    case 'wrongRoot': {
      const root = rng.pick(['Response', 'DescribeInstancesResponse', 'x']);
      // The SDK reads EC2's answers by content, not by root name: complete content is understood.
      plan = once({ kind: 'wrongRoot', root }, false, `root element <${root}>`);
      break;
    }
    case 'foreignDocument': {
      const body = rng.pick([
        '<html><body><h1>502 Bad Gateway</h1></body></html>',
        '<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
        '<root/>',
        `<${realAction}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId></${realAction}Response>`,
      ]);
      // None of the action's content: a describe told nothing; a mutating call's reply is unused.
      plan = once({ kind: 'foreignDocument', body }, !mutating, 'a 200 without the content');
      break;
    }
    case 'notXml': {
      const body = rng.pick([
        '{"Addresses": []}',
        'OK',
        rng.junk(100),
        'binary\u0001\u0002',
        '<<<<',
      ]);
      plan = once(
        { kind: 'notXml', body },
        true,
        `a 200 that is not XML ${JSON.stringify(body.slice(0, 20))}`,
      );
      break;
    }
    case 'dropField': {
      const fields = fieldsOf(realAction, s.world.mode).filter(([f]) => present(f));
      const [field, unparseable] = rng.pick(fields);
      plan = once({ kind: 'dropField', field }, unparseable, `<${field}> missing`);
      break;
    }
    case 'duplicate': {
      const scalars = ['publicIp', 'allocationId', 'networkInterfaceId', 'privateIpAddress'].filter(
        (f) =>
          !mutating &&
          !dryRunCall &&
          present(f) &&
          (realAction === 'DescribeAddresses' || !['publicIp', 'allocationId'].includes(f)) &&
          (realAction !== 'DescribeNetworkInterfaces' ||
            s.world.mode === 'cross-az' ||
            s.world.vip !== 'none'),
      );
      // Two values for one field is an answer nobody can read; a repeated item is the same item.
      if (scalars.length > 0 && rng.chance(0.6)) {
        const field = rng.pick(scalars);
        plan = once({ kind: 'duplicate', field }, true, `<${field}> twice`);
      } else {
        plan = once({ kind: 'duplicate', field: 'item' }, false, 'an <item> twice');
      }
      break;
    }
    case 'wrongType': {
      const choices: Array<[string, string]> =
        realAction === 'DescribeAddresses'
          ? [
              ['publicIp', '<a>1</a>'],
              ['allocationId', '<item>x</item>'],
            ]
          : realAction === 'DescribeNetworkInterfaces' && present('networkInterfaceId')
            ? [
                ['primary', 'maybe'],
                ['networkInterfaceId', `<id>${HERE.networkInterfaceId}</id>`],
              ]
            : [];
      if (choices.length === 0) {
        plan = once({ kind: 'extraElements', count: 3 }, false, 'unknown elements');
        break;
      }
      const [field, value] = rng.pick(choices);
      // The SDK does not refuse a Primary that is neither true nor false, and the agent needs none
      // (the holder lookup ignores it; describing this ENI falls back to its primary IP).
      plan = once(
        { kind: 'wrongType', field, value },
        field !== 'primary',
        `<${field}>${value}</${field}>`,
      );
      break;
    }
    case 'extraElements':
      plan = once({ kind: 'extraElements', count: rng.int(1, 50) }, false, 'unknown elements');
      break;
    case 'huge': {
      const bytes = rng.pick([100_000, 1_000_000, 4_000_000]);
      plan = once({ kind: 'huge', bytes }, false, `${bytes} bytes of padding`);
      break;
    }
    case 'status': {
      const status = rng.pick([400, 401, 403, 404, 429, 500, 502, 503, 504]);
      const throttle = rng.chance(0.25);
      const code = throttle ? rng.pick(THROTTLE_CODES) : rng.pick(ODD_CODES);
      const message = rng.pick([
        '',
        'something went wrong',
        `line one\nline two\n${rng.junk(40)}`,
        'M'.repeat(rng.int(1_000, 100_000)),
        rng.junk(60),
      ]);
      const body = rng.weighted<string>([
        [6, errorDocument(code, message)],
        [1, ''],
        [1, rng.junk(120)],
        [1, '<html><body>Service Unavailable</body></html>'],
      ]);
      const isDoc = body.startsWith('<?xml');
      // DryRunOperation, whatever the status, is a verdict: "permitted" for the check's DryRun,
      // and an answer to stop at for any other call.
      const dryRunCode = isDoc && code === 'DryRunOperation';
      const retried = !dryRunCode && (status >= 500 || status === 429 || (isDoc && throttle));
      const count = rng.pick([1, 2, INF]);
      const permitted = dryRunCall && dryRunCode;
      // In adaptive mode a throttling answer also starts the client-side limiter, which may pace
      // every later call down to 0.5 per second: a 5 s deadline can rightly run out on that, so a
      // case that must succeed gets the room it needs (seed 20261201 found this at ec2#1971).
      const paced = retried && count <= 2 && config.retryMode === 'adaptive';
      if (paced) config.deadlineSeconds = 20;
      plan = {
        corruption: { kind: 'status', status, body },
        count,
        unparseable: false,
        benign: permitted || (retried && count <= 2),
        // Retried until the deadline, or paced: instant in process (its clock skips sleeps), real
        // seconds outside.
        ...((retried && count > 2) || paced ? { slow: true } : {}),
        what: `HTTP ${status} ${isDoc ? `code ${JSON.stringify(code.slice(0, 30))}` : 'with a non-EC2 body'} ×${count}`,
      };
      break;
    }
    case 'reset':
    case 'resetMidBody': {
      const count = rng.pick([1, 2, INF]);
      const corruption: Ec2Corruption =
        kind === 'reset' ? { kind: 'reset' } : { kind: 'resetMidBody', at: rng.float() };
      plan = {
        corruption,
        count,
        unparseable: false,
        benign: count <= 2,
        ...(count > 2 ? { slow: true } : {}),
        what: `${kind} ×${count}`,
      };
      break;
    }
    case 'delay': {
      const ms = rng.int(10, 400);
      plan = once({ kind: 'delay', ms }, false, `${ms} ms late`);
      break;
    }
    default:
      plan = { ...once({ kind: 'hang' }, false, 'no answer once'), slow: true };
      // The attempt is abandoned after 5 s: the deadline must leave room for the retry.
      config.deadlineSeconds = 20;
  }
  const fault: Ec2Fault = {
    action: action as Ec2Fault['action'],
    nth,
    count: plan.count,
    corruption: plan.corruption,
    unparseable: plan.unparseable,
  };
  return baseCase(
    id,
    'ec2',
    s,
    rng,
    text(config),
    `${action} #${nth}: ${plan.what}`,
    { exit: plan.benign ? validExit(s) : failedExit(s), ...(plan.slow ? { slow: true } : {}) },
    { ec2Faults: [fault] },
  );
}

export const GENERATORS: Record<Family, (id: string, rng: Rng) => FuzzCase> = {
  cli: cliCase,
  config: configCase,
  imds: imdsCase,
  ec2: ec2Case,
};

/** The case family#index of this seed, alone: generation depends on nothing else. */
export function generate(seed: string, family: Family, index: number): FuzzCase {
  return GENERATORS[family](`${family}#${index}`, new Rng(`${seed}/${family}/${index}`));
}
