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
}

/** One EC2 action the emulator served, in the order served. */
export interface ActionRecord {
  readonly seq: number;
  readonly action: string;
  /** The Query form parameters, flattened as sent (`PrivateIpAddress.1`), without Action/Version. */
  readonly params: Readonly<Record<string, string>>;
  /** The action changes state when not a dry run (anything but Describe*, Get*, List*). */
  readonly mutating: boolean;
  readonly dryRun: boolean;
  readonly status: number;
  readonly errorCode: string | null;
  /** Set when the answer was injected rather than served by the model. */
  readonly fault: 'throttle' | 'error' | null;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
}

export interface EmulatorPolicy {
  /** What AssociateAddress does without AllowReassociation: false (default) refuses a move. */
  readonly allowReassociationByDefault?: boolean;
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
  client(opts?: { maxAttempts?: number }): EC2Client;
  injectFaults(rules: FaultRule | readonly FaultRule[]): Promise<void>;
  resetFaults(): Promise<void>;
  actions(): Promise<ActionRecord[]>;
  resetLog(): Promise<void>;
  setPolicy(policy: EmulatorPolicy): Promise<void>;
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
    client: (clientOpts = {}) =>
      new EC2Client({
        endpoint,
        region: TEST_REGION,
        credentials: TEST_CREDENTIALS,
        maxAttempts: clientOpts.maxAttempts ?? 3,
      }),
    injectFaults: async (rules) => {
      await control('POST', 'faults', rules);
    },
    resetFaults: async () => {
      await control('POST', 'reset-faults', {});
    },
    actions: async () => (await control('GET', 'log')) as ActionRecord[],
    resetLog: async () => {
      await control('POST', 'reset-log', {});
    },
    setPolicy: async (policy) => {
      await control('POST', 'policy', policy);
    },
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
