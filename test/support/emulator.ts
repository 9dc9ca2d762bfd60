import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EC2Client } from '@aws-sdk/client-ec2';

/** The emulator's Python entry point (moto's server with the project's corrections). */
export const EMULATOR_SCRIPT = fileURLToPath(
  new URL('../emulator/ec2_emulator.py', import.meta.url),
);

/** Fake, explicit credentials and region: tests never reach a real account. */
export const TEST_REGION = 'eu-central-1';
export const TEST_CREDENTIALS = {
  accessKeyId: 'AKIDTESTONLY',
  secretAccessKey: 'test-secret-only',
} as const;

/** One fault rule; fields merge into the rules already set for the same action. */
export interface FaultRule {
  /** An EC2 action name (`AssociateAddress`) or `*` for every action. */
  readonly action: string;
  /** Delay every call of the action by this many milliseconds, until reset. */
  readonly latencyMs?: number;
  /** Answer the next N calls with `RequestLimitExceeded` (HTTP 503). */
  readonly throttle?: number;
  /** Answer the next `count` calls (default 1) with this server error (default InternalError 500). */
  readonly error?: {
    readonly count?: number;
    readonly code?: string;
    readonly status?: number;
    readonly message?: string;
  };
  /** With latencyMs: delay only the next N calls (absent: every call until reset). */
  readonly latencyCount?: number;
  /** Close the connection without an answer (a TCP reset) on the next N calls; none is applied. */
  readonly reset?: number;
  /** Apply the next N calls, then answer 200 with a body no XML parser can read. */
  readonly malformed?: number;
  /** Apply calls, then remove these XML elements from the answer (next `count` calls, or all). */
  readonly dropFields?:
    | readonly string[]
    | { readonly names: readonly string[]; readonly count?: number };
  /** DescribeAddresses only: after each mutating call, the next N answers show the associations as they were before it. */
  readonly stale?: number;
  /** Let this many calls of the action pass untouched before the faults above apply. */
  readonly skip?: number;
}

/** One token bucket: EC2's "bucket maximum capacity" and "bucket refill rate". */
export interface BucketSpec {
  readonly capacity: number;
  readonly refillPerSecond: number;
  /** Tokens in the bucket when it is first used; default: full. Models an account already busy. */
  readonly initialTokens?: number;
}

/**
 * EC2's request rate limiting: one bucket per API action, sized by the action's category unless
 * named in `actions`. A category left out is not throttled.
 */
export interface ThrottleConfig {
  readonly mutating?: BucketSpec;
  readonly nonMutating?: BucketSpec;
  /** DescribeNetworkInterfaces and the like, sent with neither a filter nor pagination. */
  readonly unfilteredNonMutating?: BucketSpec;
  readonly actions?: Readonly<Record<string, BucketSpec>>;
  /** Freeze the buckets' clock; only `advanceThrottleClock` moves it (for exact tests). */
  readonly manualClock?: boolean;
}

export interface ThrottleState {
  readonly enabled: boolean;
  readonly manualClock: boolean;
  /** Keyed by action (`DescribeNetworkInterfaces/unfiltered` for the smaller bucket). */
  readonly buckets: Readonly<
    Record<string, BucketSpec & { tokens: number; allowed: number; throttled: number }>
  >;
}

/**
 * The request token buckets EC2 documents ("Request token bucket sizes and refill rates", EC2
 * developer guide) for the actions the agent calls: AssociateAddress is a mutating action (50, 5
 * per second), AssignPrivateIpAddresses has its own (100, 5), Describe* are non-mutating (100, 20),
 * and DescribeNetworkInterfaces without a filter or pagination uses the smaller bucket (50, 10).
 */
export const EC2_DOCUMENTED_BUCKETS = {
  mutating: { capacity: 50, refillPerSecond: 5 },
  nonMutating: { capacity: 100, refillPerSecond: 20 },
  unfilteredNonMutating: { capacity: 50, refillPerSecond: 10 },
  actions: {
    AssignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
    UnassignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
  },
} as const satisfies ThrottleConfig;

/** The header that marks a request as an observer's (harness, IMDS stub): never throttled, not logged. */
export const OBSERVER_HEADER = 'x-emulator-observer';

/** One EC2 action the emulator served, in the order served. */
export interface ActionRecord {
  readonly seq: number;
  readonly action: string;
  /** The Query form parameters, flattened as sent (`PrivateIpAddress.1`), without Action/Version. */
  readonly params: Readonly<Record<string, string>>;
  /** SigV4's access key id of the caller (tells apart agents given distinct fake keys). */
  readonly accessKeyId: string | null;
  /** The action changes state when not a dry run (anything but Describe*, Get*, List*, Search*). */
  readonly mutating: boolean;
  readonly dryRun: boolean;
  readonly status: number;
  readonly errorCode: string | null;
  /** Set when the answer was injected, or a token bucket was empty (bucket). */
  readonly fault: 'throttle' | 'error' | 'bucket' | 'reset' | 'malformed' | 'dropFields' | null;
  /** Sent with EXEMPT_HEADER: served without faults or latency (an observer, not the client under test). */
  readonly exempt: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
}

export interface EmulatorPolicy {
  /** What AssociateAddress does without AllowReassociation: false (default) refuses a move. */
  readonly allowReassociationByDefault?: boolean;
}

/** A request carrying this header (value `1`) is exempt from injected faults and latency. */
export const EXEMPT_HEADER = 'x-emulator-no-faults';

/**
 * Marks every request of a client as exempt from injected faults and latency: for the harness's
 * observers (an IMDS stub reading an ENI's addresses, a check of where an address went), so that
 * latency injected for the client under test is not paid by what only watches it.
 */
export function exemptFromFaults(client: EC2Client): EC2Client {
  return withHeader(client, EXEMPT_HEADER);
}

/** Marks every request of this client with one of the emulator's headers. */
function withHeader(client: EC2Client, header: string): EC2Client {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers[header] = '1';
      return next(args);
    },
    { step: 'build', name: `emulatorHeader-${header}` },
  );
  return client;
}

/** An IAM identity-based policy document (JSON as IAM takes it). */
export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: readonly Readonly<Record<string, unknown>>[];
}

/**
 * A caller whose requests the emulator authorizes against `policy` (see IamEnforcer in
 * ec2_emulator.py): the signature is checked when `secretAccessKey` is given, the session token
 * when `sessionToken` is. Callers whose key id is not registered are served unchecked.
 */
export interface IamPrincipal {
  readonly accessKeyId: string;
  readonly secretAccessKey?: string;
  readonly sessionToken?: string;
  /** The IAM user name in refusal messages. @default 'eip-failover' */
  readonly name?: string;
  readonly policy: PolicyDocument;
}

export interface Emulator {
  /** Base URL of the EC2 endpoint, for `AWS_ENDPOINT_URL_EC2` or a client's `endpoint`. */
  readonly endpoint: string;
  readonly pid: number;
  /** An EC2 client bound to this emulator, with explicit fake credentials and region. */
  client(opts?: { maxAttempts?: number; exemptFromFaults?: boolean }): EC2Client;
  /** A client whose requests are an observer's: never throttled, not in the action log. */
  observerClient(): EC2Client;
  injectFaults(rules: FaultRule | readonly FaultRule[]): Promise<void>;
  resetFaults(): Promise<void>;
  actions(): Promise<ActionRecord[]>;
  /** The actions being served right now (held by injected latency, say). */
  inflight(): Promise<{ action: string; startedAt: string }[]>;
  resetLog(): Promise<void>;
  setPolicy(policy: EmulatorPolicy): Promise<void>;
  /** Replaces the token buckets (fresh, at their initial tokens); `{}` switches throttling off. */
  setThrottle(config: ThrottleConfig): Promise<ThrottleState>;
  throttle(): Promise<ThrottleState>;
  /** Moves the buckets' clock when the throttle was set with `manualClock`. */
  advanceThrottleClock(seconds: number): Promise<ThrottleState>;
  /** Enforce IAM for these callers (added to those registered); reset() forgets them. */
  registerPrincipals(principals: IamPrincipal | readonly IamPrincipal[]): Promise<void>;
  resetIam(): Promise<void>;
  /** Forget every resource, fault, log entry, policy and principal: a fresh EC2, cheaper than a restart. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartEmulatorOptions {
  /** Address to bind. @default '127.0.0.1' */
  readonly host?: string;
  /** Port to bind; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** How long to wait for the ready line. @default 20000 */
  readonly startTimeoutMs?: number;
}

const READY = /^EMULATOR_READY (\S+)$/m;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export async function startEmulator(opts: StartEmulatorOptions = {}): Promise<Emulator> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  const child = spawn(
    'python3',
    [EMULATOR_SCRIPT, '--host', host, '--port', String(port), '--exit-with-parent'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  killAllOnExit();
  child.once('exit', () => live.delete(child));

  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });

  const endpoint = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const onError = (err: Error): void => fail(err.message);
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited (code ${code}, signal ${signal})`);
    const settle = (): void => {
      clearTimeout(timer);
      child.off('error', onError);
      child.off('exit', onExit);
    };
    const fail = (why: string): void => {
      settle();
      child.kill('SIGKILL');
      reject(new Error(`EC2 emulator did not start: ${why}\n--- stderr ---\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`no ready line within ${timeoutMs} ms`), timeoutMs);
    child.once('error', onError);
    child.once('exit', onExit);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = READY.exec(stdout);
      if (match?.[1]) {
        settle();
        resolve(match[1]);
      }
    });
  });

  const control = async (
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<unknown> => {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    const res = await fetch(`${endpoint}/_emulator/${path}`, init);
    const text = await res.text();
    if (!res.ok) throw new Error(`emulator ${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as unknown;
  };

  return {
    endpoint,
    pid: child.pid ?? -1,
    client: (clientOpts = {}) => {
      const client = new EC2Client({
        endpoint,
        region: TEST_REGION,
        credentials: TEST_CREDENTIALS,
        maxAttempts: clientOpts.maxAttempts ?? 3,
      });
      return clientOpts.exemptFromFaults ? exemptFromFaults(client) : client;
    },
    observerClient: () =>
      withHeader(
        new EC2Client({
          endpoint,
          region: TEST_REGION,
          credentials: TEST_CREDENTIALS,
          maxAttempts: 3,
        }),
        OBSERVER_HEADER,
      ),
    injectFaults: async (rules) => {
      await control('POST', 'faults', rules);
    },
    resetFaults: async () => {
      await control('POST', 'reset-faults', {});
    },
    actions: async () => (await control('GET', 'log')) as ActionRecord[],
    inflight: async () =>
      (await control('GET', 'inflight')) as { action: string; startedAt: string }[],
    resetLog: async () => {
      await control('POST', 'reset-log', {});
    },
    setPolicy: async (policy) => {
      await control('POST', 'policy', policy);
    },
    setThrottle: async (config) => (await control('POST', 'throttle', config)) as ThrottleState,
    throttle: async () => (await control('GET', 'throttle')) as ThrottleState,
    advanceThrottleClock: async (seconds) =>
      (await control('POST', 'throttle/advance', { seconds })) as ThrottleState,
    registerPrincipals: async (principals) => {
      await control('POST', 'iam', principals);
    },
    resetIam: async () => {
      await control('POST', 'reset-iam', {});
    },
    reset: async () => {
      await control('POST', 'reset', {});
    },
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
