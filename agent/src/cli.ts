import { randomUUID } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command, CommanderError, Option } from 'commander';
import type { DestinationStream, Logger } from 'pino';
import { type CheckReport, renderChecks, runChecks } from './check.js';
import { type AgentConfig, type ConfigFlags, loadConfig } from './config.js';
import { resolveCredentials } from './credentials.js';
import { createEc2Client, type Ec2Gateway, SdkEc2Gateway } from './ec2.js';
import { ConfigError, errorMessage, oneLine, quote } from './errors.js';
import { FifoLoop } from './fifo.js';
import { discoverIdentity, type NodeIdentity } from './identity.js';
import { type Imds, ImdsClient } from './imds.js';
import { createLogger } from './log.js';
import {
  currentOrigin,
  reporterGone,
  type TransitionOrigin,
  transitionOriginNow,
} from './origin.js';
import { type Clock, Deadline, systemClock } from './retry.js';
import { createRetryStrategy } from './retry-strategy.js';
import { StateStore, type TakeoverOutcome, type VrrpState } from './state.js';
import { collectStatus, renderStatus, type StatusReport, StatusUnknown } from './status.js';
import { observeAway, type TakeoverResult, takeover } from './takeover.js';

export const VERSION = '0.1.0';

/** The exit codes of DESIGN.md, in one place. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  superseded: 3,
  undetermined: 4,
} as const;

/** Everything the agent touches outside itself; production defaults in main.ts, fakes in tests. */
export interface RunDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly clock?: Clock;
  readonly readConfigFile?: (path: string) => string;
  readonly imds?: Imds;
  readonly ec2?: Ec2Gateway;
  readonly logStream?: DestinationStream;
  readonly sysClassNet?: string;
  /** When keepalived forked this hook; defaults to this process's start time from /proc. */
  readonly origin?: TransitionOrigin | null;
  /** The fifo command's input; defaults to reading the FIFO at path line by line. */
  readonly fifoLines?: (path: string) => AsyncIterable<string>;
}

interface CommonOptions {
  config?: string;
  allocationId?: string;
  privateIp?: string;
  interface?: string;
  region?: string;
  stateDir?: string;
  logFile?: string;
  deadline?: string;
  dryRun?: boolean;
}

/** Parses argv and runs one command; resolves to the exit code. Never exits the process itself. */
export async function run(argv: readonly string[], deps: RunDeps): Promise<number> {
  if (argv.length === 0) {
    // commander would print the whole help on stderr; a hook's stderr is one line in a log.
    deps.stderr(`eip-failover: a command is required (${COMMANDS}); ${HELP_HINT}\n`);
    return EXIT.usage;
  }
  let exitCode: number = EXIT.ok;
  const program = createProgram(deps, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ConfigError) {
      deps.stderr(`eip-failover: ${oneLine(err.message)}\n`);
      return EXIT.usage;
    }
    deps.stderr(`eip-failover: unexpected error: ${oneLine(errorMessage(err))}\n`);
    return EXIT.failed;
  }
  return exitCode;
}

const COMMANDS = 'takeover, release, notify, reconcile, fifo, status, check';
const HELP_HINT = 'run eip-failover --help for usage';

/** commander's "error: …" plus a suggestion plus a hint, as the one line every error gets. */
function usageLine(message: string, command?: string): string {
  const text = message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  return `eip-failover: ${command === undefined ? '' : `${command}: `}${text} (${HELP_HINT})\n`;
}

export function createProgram(deps: RunDeps, setExit: (code: number) => void): Command {
  const program = new Command('eip-failover')
    .description('Moves AWS Elastic IPs to this node when keepalived makes it VRRP MASTER.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: deps.stdout,
      writeErr: deps.stderr,
      outputError: (message, write) => write(usageLine(message)),
    });

  const command = (name: string, description: string, withDryRun: boolean) => {
    const cmd = program.command(name).description(description);
    // A parse error inside a command names it, so a hook's log line says which hook was wrong.
    cmd.configureOutput({ outputError: (message, write) => write(usageLine(message, name)) });
    cmd
      .option(
        '-c, --config <path>',
        'config file (env EIP_FAILOVER_CONFIG; default /etc/eip-failover/config.json)',
      )
      .option('--allocation-id <id>', 'Elastic IP allocation id (overrides the config file)')
      .option(
        '--private-ip <ip>',
        "private IP the EIP follows; absent: this node's primary IP (cross-AZ)",
      )
      .option(
        '--interface <name>',
        'OS interface whose ENI gets the address (default: device index 0)',
      )
      .option('--region <region>', 'AWS region (env AWS_REGION; default from IMDS)')
      .option('--state-dir <dir>', 'state directory (default /run/eip-failover)')
      .option('--log-file <path>', 'append JSON logs here (default stdout)')
      .option('--deadline <seconds>', 'overall deadline for the command (default 60)');
    if (withDryRun) cmd.option('--dry-run', 'print the plan; make no mutating call');
    return cmd;
  };

  command('takeover', 'make this node hold every configured address (notify_master)', true).action(
    async (opts: CommonOptions) => setExit(await doTakeover(deps, opts)),
  );
  command(
    'release',
    'record a non-MASTER state; never touches EC2 (notify_backup/fault/stop)',
    false,
  )
    .argument('[state]', 'BACKUP, FAULT or STOP', 'BACKUP')
    .action(async (state: string, opts: CommonOptions) =>
      setExit(await doRelease(deps, opts, state)),
    );
  command('notify', "keepalived's generic notify: MASTER → takeover, anything else → release", true)
    .argument('<type>', 'INSTANCE or GROUP')
    .argument('<name>', 'VRRP instance or group name')
    .argument('<state>', 'MASTER, BACKUP, FAULT, STOP')
    .argument('[priority]', 'priority (ignored)')
    .action(
      async (
        type: string,
        name: string,
        state: string,
        _priority: string | undefined,
        opts: CommonOptions,
      ) => setExit(await doNotify(deps, opts, type, name, state)),
    );
  command(
    'reconcile',
    'if MASTER and an address is not here, take it over (timer, notify_master_rx_lower_pri)',
    true,
  ).action(async (opts: CommonOptions) => setExit(await doTakeover(deps, opts, 'reconcile')));
  command(
    'fifo',
    "keepalived's vrrp_notify_fifo_script: one warm process acting on every transition in order",
    false,
  )
    .option('--instance <name>', 'act only on lines for this VRRP instance or group')
    .argument('<fifo>', 'the FIFO keepalived writes to (keepalived appends its path)')
    .action(async (fifo: string, opts: CommonOptions & { instance?: string }) =>
      setExit(await doFifo(deps, opts, fifo)),
    );
  command('status', 'VRRP state here against where each address points in EC2', false)
    .addOption(new Option('--json', 'machine-readable output'))
    .action(async (opts: CommonOptions & { json?: boolean }) =>
      setExit(await doStatus(deps, opts, opts.json ?? false)),
    );
  command(
    'check',
    'config, IMDS, credentials, EC2 reachability and permissions (DryRun)',
    false,
  ).action(async (opts: CommonOptions) => setExit(await doCheck(deps, opts)));
  return program;
}

/** Wires one run: config first (errors before any call), then lazily IMDS, credentials, EC2. */
function prepare(deps: RunDeps, opts: CommonOptions, reportOnStdout = false) {
  const flags: ConfigFlags = {
    ...(opts.config !== undefined ? { config: opts.config } : {}),
    ...(opts.allocationId !== undefined ? { allocationId: opts.allocationId } : {}),
    ...(opts.privateIp !== undefined ? { privateIp: opts.privateIp } : {}),
    ...(opts.interface !== undefined ? { interface: opts.interface } : {}),
    ...(opts.region !== undefined ? { region: opts.region } : {}),
    ...(opts.stateDir !== undefined ? { stateDir: opts.stateDir } : {}),
    ...(opts.logFile !== undefined ? { logFile: opts.logFile } : {}),
    ...(opts.deadline !== undefined ? { deadline: opts.deadline } : {}),
    ...(opts.dryRun !== undefined ? { dryRun: opts.dryRun } : {}),
  };
  const config = loadConfig(flags, deps.env, deps.readConfigFile);
  const clock = deps.clock ?? systemClock;
  const log = createLogger({
    reportOnStdout: reportOnStdout || config.dryRun,
    ...(config.logFile !== undefined ? { logFile: config.logFile } : {}),
    ...(deps.logStream !== undefined ? { stream: deps.logStream } : {}),
  });
  const imds =
    deps.imds ??
    new ImdsClient({
      ...(deps.env.AWS_EC2_METADATA_SERVICE_ENDPOINT
        ? { endpoint: deps.env.AWS_EC2_METADATA_SERVICE_ENDPOINT }
        : {}),
    });
  let identityPromise: Promise<NodeIdentity> | undefined;
  const identity = () => {
    identityPromise ??= discoverIdentity(imds, {
      ...(config.interface !== undefined ? { interface: config.interface } : {}),
      ...(config.region !== undefined ? { region: config.region } : {}),
      ...(deps.sysClassNet !== undefined ? { sysClassNet: deps.sysClassNet } : {}),
    }).catch((err: unknown) => {
      // A long-lived process (fifo) asks again next time instead of remembering a failure.
      identityPromise = undefined;
      throw err;
    });
    return identityPromise;
  };
  const credentials = resolveCredentials(imds, deps.env);
  let client: ReturnType<typeof createEc2Client> | undefined;
  let gateway: Ec2Gateway | undefined = deps.ec2;
  /** The gateway needs the region, which may come from IMDS: built on first use. */
  const lazyEc2 = async (): Promise<Ec2Gateway> => {
    if (gateway === undefined) {
      const region = config.region ?? (await identity()).region;
      client = createEc2Client({ region, credentials: credentials.provider });
      gateway = new SdkEc2Gateway(client, log, clock, createRetryStrategy(config.retryMode, clock));
    }
    return gateway;
  };
  const ec2: Ec2Gateway = {
    describeAddresses: async (...a) => (await lazyEc2()).describeAddresses(...a),
    findPrivateIpHolder: async (...a) => (await lazyEc2()).findPrivateIpHolder(...a),
    describeNetworkInterface: async (...a) => (await lazyEc2()).describeNetworkInterface(...a),
    assignPrivateIp: async (...a) => (await lazyEc2()).assignPrivateIp(...a),
    associateAddress: async (...a) => (await lazyEc2()).associateAddress(...a),
    dryRunAssociate: async (...a) => (await lazyEc2()).dryRunAssociate(...a),
  };
  const state = new StateStore(config.stateDir, clock);
  const close = () => client?.destroy();
  return { config, clock, log, imds, identity, credentials, ec2, state, close };
}

type Prepared = ReturnType<typeof prepare>;

function exitFor(outcome: TakeoverOutcome): number {
  switch (outcome) {
    case 'verified':
    case 'noop':
      return EXIT.ok;
    case 'superseded':
      return EXIT.superseded;
    case 'failed':
      return EXIT.failed;
  }
}

async function doTakeover(
  deps: RunDeps,
  opts: CommonOptions,
  command: 'takeover' | 'reconcile' = 'takeover',
): Promise<number> {
  const p = prepare(deps, opts);
  try {
    return await takeoverAs(deps, p, command);
  } finally {
    p.close();
  }
}

/** The fifo command records each transition itself, then asks for a takeover of that one. */
interface Recorded {
  readonly seq: number;
  readonly knownAway: ReadonlySet<string>;
}

async function takeoverAs(
  deps: RunDeps,
  p: Prepared,
  command: 'takeover' | 'reconcile',
  recorded?: Recorded,
): Promise<number> {
  const failoverId = randomUUID();
  const log = p.log.child({ failoverId, command, ...(recorded ? { source: 'fifo' } : {}) });
  let seq: number;
  let deferIfMoved = false;
  if (recorded !== undefined) {
    seq = recorded.seq;
  } else if (p.config.dryRun) {
    seq = (await p.state.read()).seq;
  } else if (command === 'takeover') {
    const recorded = await p.state.recordTransition('MASTER', origin(deps));
    if (recorded.stale) {
      log.warn(
        { recorded: recorded.state.vrrpState, seq: recorded.state.seq },
        'stale MASTER transition: a later one is already recorded; not acting',
      );
      deps.stderr(
        `eip-failover: takeover superseded: keepalived reported a later transition (${recorded.state.vrrpState}) first\n`,
      );
      return EXIT.superseded;
    }
    seq = recorded.state.seq;
    log.info({ seq, vrrpState: 'MASTER' }, 'transition recorded');
  } else {
    const current = await p.state.read();
    if (current.vrrpState !== 'MASTER') {
      log.info({ vrrpState: current.vrrpState }, 'not MASTER: nothing to reconcile');
      return EXIT.ok;
    }
    // A MASTER recorded by a keepalived that has since crashed is not MASTER any more: acting on
    // it would pull the address away from the node that really leads now.
    const gone = reporterGone(current.origin);
    if (gone !== null) {
      log.warn(
        { vrrpState: current.vrrpState, reason: gone },
        'recorded MASTER is stale: not reconciling',
      );
      return EXIT.ok;
    }
    seq = current.seq;
    // This node already verified the addresses for this very transition: if they are elsewhere
    // now, the other node (or a person) moved them since. Only a node that reclaims from its peer
    // takes them back; the other leaves them, so a partition cannot make the pair ping-pong.
    const last = current.lastTakeover;
    deferIfMoved =
      !p.config.reclaimFromPeer &&
      last !== null &&
      last.seq === seq &&
      (last.outcome === 'verified' || last.outcome === 'noop');
  }
  const result = await takeover(
    { ec2: p.ec2, imds: p.imds, state: p.state, clock: p.clock, log, identity: p.identity },
    {
      config: p.config,
      seq,
      command,
      failoverId,
      deferIfMoved,
      ...(recorded !== undefined ? { knownAway: recorded.knownAway } : {}),
      print: (line) => deps.stdout(`${line}\n`),
    },
  );
  if (!p.config.dryRun && !(command === 'reconcile' && result.outcome === 'noop')) {
    await recordResult(p, failoverId, command, seq, result);
  }
  if (result.outcome === 'failed' || result.outcome === 'superseded') {
    deps.stderr(`eip-failover: ${command} ${result.outcome}: ${oneLine(result.error ?? '')}\n`);
  }
  return exitFor(result.outcome);
}

async function recordResult(
  p: Prepared,
  failoverId: string,
  command: string,
  seq: number,
  result: TakeoverResult,
): Promise<void> {
  await p.state.recordTakeover({
    failoverId,
    command,
    seq,
    startedAt: result.startedAt,
    finishedAt: new Date(p.clock.now()).toISOString(),
    durationMs: result.durationMs,
    outcome: result.outcome,
    ...(result.error !== undefined ? { error: result.error } : {}),
  });
}

function origin(deps: RunDeps): TransitionOrigin | null {
  return deps.origin === undefined ? currentOrigin() : deps.origin;
}

const RELEASE_STATES: ReadonlySet<string> = new Set(['BACKUP', 'FAULT', 'STOP']);

async function doRelease(deps: RunDeps, opts: CommonOptions, rawState: string): Promise<number> {
  const state = rawState.toUpperCase();
  if (!RELEASE_STATES.has(state)) {
    deps.stderr(`eip-failover: release takes BACKUP, FAULT or STOP, not ${quote(rawState)}\n`);
    return EXIT.usage;
  }
  const p = prepare(deps, opts);
  try {
    // The new MASTER moves the addresses; disassociating from a failing node could only cause an outage.
    const recorded = await p.state.recordTransition(state as VrrpState, origin(deps));
    if (recorded.stale) {
      p.log.warn(
        { command: 'release', vrrpState: state, recorded: recorded.state.vrrpState },
        'stale transition: a later one is already recorded',
      );
    } else {
      p.log.info(
        { command: 'release', seq: recorded.state.seq, vrrpState: state },
        'transition recorded; no EC2 change',
      );
    }
    return EXIT.ok;
  } finally {
    p.close();
  }
}

const NOTIFY_TYPES: ReadonlySet<string> = new Set(['INSTANCE', 'GROUP']);
const NOTIFY_STATES: ReadonlyMap<string, VrrpState> = new Map([
  ['MASTER', 'MASTER'],
  ['BACKUP', 'BACKUP'],
  ['FAULT', 'FAULT'],
  ['STOP', 'STOP'],
  ['DELETED', 'STOP'],
]);

async function doNotify(
  deps: RunDeps,
  opts: CommonOptions,
  type: string,
  name: string,
  rawState: string,
): Promise<number> {
  const state = NOTIFY_STATES.get(rawState.toUpperCase());
  if (!NOTIFY_TYPES.has(type.toUpperCase()) || state === undefined) {
    deps.stderr(
      `eip-failover: notify expects TYPE NAME STATE as keepalived passes them (INSTANCE|GROUP, name, MASTER|BACKUP|FAULT|STOP); got ${quote(`${type} ${name} ${rawState}`)}\n`,
    );
    return EXIT.usage;
  }
  if (state === 'MASTER') return doTakeover(deps, opts);
  return doRelease(deps, opts, state);
}

async function doFifo(
  deps: RunDeps,
  opts: CommonOptions & { instance?: string },
  fifoPath: string,
): Promise<number> {
  const p = prepare(deps, opts);
  try {
    if (deps.fifoLines === undefined) {
      let isFifo = false;
      try {
        isFifo = statSync(fifoPath).isFIFO();
      } catch {
        // reported below
      }
      if (!isFifo) {
        deps.stderr(
          `eip-failover: fifo: ${fifoPath} is not a FIFO; run this as keepalived's vrrp_notify_fifo_script, which appends the vrrp_notify_fifo path\n`,
        );
        return EXIT.usage;
      }
    }
    const log = p.log.child({ command: 'fifo' });
    const loop = new FifoLoop(
      {
        record: async (state) => {
          // Lines arrive in keepalived's order: each is newer than anything recorded before it.
          const r = await p.state.recordTransition(state, transitionOriginNow());
          return r.stale ? null : r.state.seq;
        },
        takeover: (seq, knownAway) => takeoverAs(deps, p, 'takeover', { seq, knownAway }),
        lookAway: () =>
          observeAway(
            { ec2: p.ec2, identity: p.identity },
            p.config.addresses,
            new Deadline(p.clock, Math.min(p.config.deadlineSeconds, 10) * 1_000),
          ),
        log,
        sleep: (ms) =>
          new Promise((resolve) => {
            setTimeout(resolve, ms).unref();
          }),
      },
      opts.instance !== undefined ? { instance: opts.instance } : {},
    );
    log.info({ fifo: fifoPath, instance: opts.instance ?? null }, 'fifo: waiting for keepalived');
    // Identity, credentials and a connection to EC2 while keepalived has nothing to say yet.
    loop.warmUp();
    const lines = (deps.fifoLines ?? readFifoLines)(fifoPath);
    for await (const line of lines) await loop.line(line);
    await loop.drain();
    log.info('fifo: keepalived closed the FIFO; exiting');
    return EXIT.ok;
  } finally {
    p.close();
  }
}

function readFifoLines(path: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
}

async function doStatus(deps: RunDeps, opts: CommonOptions, json: boolean): Promise<number> {
  const p = prepare(deps, opts, true);
  const deadline = new Deadline(p.clock, Math.min(p.config.deadlineSeconds, 15) * 1_000);
  let report: StatusReport;
  let code: number;
  try {
    report = await collectStatus(
      { ec2: p.ec2, identity: p.identity, readState: () => p.state.read() },
      p.config,
      deadline,
    );
    code = report.consistent ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (!(err instanceof StatusUnknown)) throw err;
    report = err.partial;
    code = EXIT.undetermined;
  } finally {
    p.close();
  }
  deps.stdout(
    json
      ? `${JSON.stringify(report, null, 2)}\n`
      : renderStatus(report, new Date(p.clock.now()), code === EXIT.undetermined),
  );
  return code;
}

async function doCheck(deps: RunDeps, opts: CommonOptions): Promise<number> {
  const p = prepare(deps, opts, true);
  let report: CheckReport;
  try {
    report = await runChecks(
      { ec2: p.ec2, identity: p.identity, credentialSource: p.credentials.describe },
      p.config,
      new Deadline(p.clock, Math.min(p.config.deadlineSeconds, 30) * 1_000),
    );
  } finally {
    p.close();
  }
  deps.stdout(renderChecks(report));
  if (report.undetermined) return EXIT.undetermined;
  return report.lines.every((l) => l.ok) ? EXIT.ok : EXIT.failed;
}

export type { AgentConfig, Logger };
