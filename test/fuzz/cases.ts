import type { Ec2Fault } from './ec2-fake.js';
import type { ImdsFault } from './imds-fake.js';

/** The four families of issue #7's "bad input". */
export type Family = 'cli' | 'config' | 'imds' | 'ec2';
export const FAMILIES: readonly Family[] = ['cli', 'config', 'imds', 'ec2'];

/** The config the case runs with. `@DIR@` in text is replaced by the case's own directory. */
export type ConfigSpec =
  | { readonly kind: 'text'; readonly text: string }
  /** Raw bytes (not UTF-8, BOMs, …), base64 so the case prints and replays as text. */
  | { readonly kind: 'bytes'; readonly base64: string }
  /** A file of this many bytes: a valid config padded with whitespace, or junk. */
  | { readonly kind: 'huge'; readonly bytes: number; readonly valid: boolean }
  | { readonly kind: 'directory' }
  | { readonly kind: 'fifo' }
  | { readonly kind: 'missing' }
  /** A path outside the case directory, e.g. /dev/zero. */
  | { readonly kind: 'path'; readonly path: string };

export type Mode = 'same-subnet' | 'cross-az';

export interface WorldSpec {
  readonly mode: Mode;
  /** Where the EIP points at the start. */
  readonly eip: 'peer' | 'here' | 'none';
  /** Same-subnet only: which ENI holds the VIP at the start. */
  readonly vip: 'peer' | 'here' | 'none';
}

export interface Expectation {
  /** Exit codes the case may end with. */
  readonly exit: readonly number[];
  /** For exit 2: the message must name one of these (the flag, key or value at fault). */
  readonly names?: readonly string[];
  /** Usage and config errors come before any API call: neither IMDS nor EC2 may see a request. */
  readonly noApiCall?: boolean;
  /** Takes real seconds (a timeout must fire): left out of the process-level sample. */
  readonly slow?: boolean;
}

export interface FuzzCase {
  /** family#index: with the seed, all it takes to generate the case again. */
  readonly id: string;
  readonly family: Family;
  /** What was generated, in words. */
  readonly what: string;
  /** `@CONFIG@` and `@DIR@` are replaced when the case runs. */
  readonly argv: readonly string[];
  readonly config: ConfigSpec;
  /** Credentials from the environment (true) or from the instance profile through IMDS. */
  readonly envCredentials: boolean;
  /** AWS_REGION in the environment, if any. */
  readonly envRegion?: string;
  readonly world: WorldSpec;
  /** The recorded VRRP state before the run (reconcile acts only on MASTER). */
  readonly recordedState?: 'MASTER';
  readonly imdsFaults: readonly ImdsFault[];
  readonly ec2Faults: readonly Ec2Fault[];
  /** The instance-profile credentials have expired: EC2 refuses them. */
  readonly expiredCredentials?: boolean;
  readonly expect: Expectation;
}

/** JSON with Infinity kept, so a printed case can be read back. */
export function describeCase(c: FuzzCase): string {
  return JSON.stringify(c, (_k, v) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v), 0);
}
