import {
  DefaultRateLimiter,
  INITIAL_RETRY_TOKENS,
  MAXIMUM_RETRY_DELAY,
  NO_RETRY_INCREMENT,
  Retry,
} from '@smithy/core/retry';
import type { Clock, Deadline, ErrorKind } from './retry.js';

/** The AWS SDKs' retry modes (AWS SDKs and Tools Reference Guide, "Retry behavior"). */
export const RETRY_MODES = ['standard', 'adaptive'] as const;
export type RetryMode = (typeof RETRY_MODES)[number];

/** What the next attempt waits for, or why there is none. */
export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number; readonly cost: number }
  | { readonly retry: false; readonly reason: string };

/**
 * How one agent process paces its EC2 calls, shared by every call it makes (as the SDK shares one
 * strategy per client). The gateway's loop asks it, and the command's deadline bounds every wait.
 */
export interface RetryStrategy {
  readonly mode: RetryMode;
  /** Waits until the client-side rate limiter lets a request go; false: not before the deadline. */
  beforeAttempt(deadline: Deadline): Promise<boolean>;
  /** A response arrived; lastRetryCost: what the call's latest retry took from the quota. */
  onSuccess(lastRetryCost: number | undefined): void;
  /** An attempt failed; retries: how many retries the call has had so far. */
  onError(kind: ErrorKind, retries: number): RetryDecision;
}

/**
 * The SDK's standard mode (StandardRetryStrategy in @smithy/core/retry), with the deadline instead
 * of maxAttempts: full-jitter exponential backoff from the SDK's bases (throttling and other
 * errors apart), capped at the SDK's maximum delay, and the SDK's retry quota — each retry takes
 * tokens from a per-process bucket, a success gives them back, and an empty quota ends retrying.
 */
export class StandardRetry implements RetryStrategy {
  readonly mode: RetryMode = 'standard';
  private quota = INITIAL_RETRY_TOKENS;

  constructor(protected readonly clock: Clock) {}

  async beforeAttempt(_deadline: Deadline): Promise<boolean> {
    return true;
  }

  onSuccess(lastRetryCost: number | undefined): void {
    this.quota = Math.min(INITIAL_RETRY_TOKENS, this.quota + (lastRetryCost ?? NO_RETRY_INCREMENT));
  }

  onError(kind: ErrorKind, retries: number): RetryDecision {
    if (kind === 'fatal') return { retry: false, reason: 'not retryable' };
    const throttled = kind === 'throttled';
    const cost = throttled ? Retry.throttlingCost() : Retry.cost();
    if (this.quota < cost) {
      return { retry: false, reason: `the retry quota ran out (${this.quota} tokens left)` };
    }
    this.quota -= cost;
    const base = throttled ? Retry.throttlingDelay() : Retry.delay();
    const ceiling = Math.min(base * 2 ** retries, MAXIMUM_RETRY_DELAY);
    return { retry: true, delayMs: Math.floor(this.clock.random() * ceiling), cost };
  }

  /** The retry quota left (for tests and logs). */
  quotaLeft(): number {
    return this.quota;
  }
}

/**
 * The SDK's adaptive mode (AdaptiveRetryStrategy): standard, plus the SDK's own client-side rate
 * limiter (DefaultRateLimiter, CUBIC): once throttled, every request first takes a token from a
 * client-side bucket whose rate drops on each throttling answer and grows back on successes.
 */
export class AdaptiveRetry extends StandardRetry {
  override readonly mode: RetryMode = 'adaptive';
  private readonly limiter: LimiterInternals;

  constructor(clock: Clock) {
    super(clock);
    this.limiter = clockedRateLimiter(clock);
  }

  override async beforeAttempt(deadline: Deadline): Promise<boolean> {
    // DefaultRateLimiter.acquireTokenBucket(1), with the wait on the agent's clock and refused
    // when it would outlast the deadline.
    const limiter = this.limiter;
    if (!limiter.enabled) return true;
    limiter.refillTokenBucket();
    while (limiter.availableTokens < 1) {
      // Whole milliseconds, as setTimeout waits: a fraction would not move a millisecond clock.
      const waitMs = Math.ceil(((1 - limiter.availableTokens) / limiter.fillRate) * 1000);
      if (waitMs >= deadline.remainingMs()) return false;
      await this.clock.sleep(waitMs);
      limiter.refillTokenBucket();
    }
    limiter.availableTokens -= 1;
    return true;
  }

  override onSuccess(lastRetryCost: number | undefined): void {
    this.limiter.updateClientSendingRate({});
    super.onSuccess(lastRetryCost);
  }

  override onError(kind: ErrorKind, retries: number): RetryDecision {
    this.limiter.updateClientSendingRate({
      errorType: kind === 'throttled' ? 'THROTTLING' : 'TRANSIENT',
    });
    return super.onError(kind, retries);
  }

  /** The limiter's current send rate in requests per second, or null while it is not limiting. */
  sendRate(): number | null {
    return this.limiter.enabled ? this.limiter.fillRate : null;
  }
}

export function createRetryStrategy(mode: RetryMode, clock: Clock): RetryStrategy {
  return mode === 'adaptive' ? new AdaptiveRetry(clock) : new StandardRetry(clock);
}

/** DefaultRateLimiter's members this module uses; private in its typings, stable in its code. */
interface LimiterInternals {
  updateClientSendingRate(response: unknown): void;
  refillTokenBucket(): void;
  enabled: boolean;
  availableTokens: number;
  fillRate: number;
}

/** The SDK's DefaultRateLimiter, its time read from the agent's clock rather than Date.now(). */
function clockedRateLimiter(clock: Clock): LimiterInternals {
  const Base = DefaultRateLimiter as unknown as new () => LimiterInternals;
  class Clocked extends Base {
    getCurrentTimeInSeconds(): number {
      return clock.now() / 1000;
    }
  }
  return new Clocked();
}
