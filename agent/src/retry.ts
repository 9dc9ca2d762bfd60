import { DeadlineError } from './errors.js';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** In [0, 1): the jitter source. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: () => Math.random(),
};

/** One overall budget for a command: every wait and every call is bounded by what is left. */
export class Deadline {
  readonly endsAt: number;
  constructor(
    readonly clock: Clock,
    readonly totalMs: number,
  ) {
    this.endsAt = clock.now() + totalMs;
  }
  remainingMs(): number {
    return Math.max(0, this.endsAt - this.clock.now());
  }
  expired(): boolean {
    return this.remainingMs() <= 0;
  }
  check(what: string): void {
    if (this.expired()) {
      throw new DeadlineError(`deadline of ${Math.round(this.totalMs / 1000)} s passed ${what}`);
    }
  }
}

/** EC2 and the SDK name throttling several ways; all mean "slow down and try again". */
const THROTTLING = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'EC2ThrottledException',
  'BandwidthLimitExceeded',
  'SlowDown',
]);
const TRANSIENT_CODES = new Set([
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'Unavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'ERR_HTTP2_STREAM_ERROR',
]);

export type ErrorKind = 'throttled' | 'transient' | 'network' | 'fatal';

interface SdkLikeError {
  name?: string;
  code?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: unknown;
}

/** Sorts an error from the SDK by what retrying can do about it. */
export function classify(err: unknown): ErrorKind {
  const e = (err ?? {}) as SdkLikeError;
  const name = e.name ?? '';
  if (THROTTLING.has(name)) return 'throttled';
  if (NETWORK_CODES.has(e.code ?? '') || NETWORK_CODES.has(name)) return 'network';
  if (TRANSIENT_CODES.has(name)) return 'transient';
  const status = e.$metadata?.httpStatusCode;
  if (status === 429) return 'throttled';
  // A server fault with a status is a 5xx; a fault without one is a response we could not parse,
  // which we do not retry: nothing may act on an answer it could not read.
  if (status !== undefined && status >= 500) return 'transient';
  return 'fatal';
}

/** The code that names an error in logs and messages: EC2's error code, or the socket's. */
export function errorCode(err: unknown): string {
  const e = (err ?? {}) as SdkLikeError;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return e.code;
  return e.name ?? 'Error';
}
