/**
 * Typed failures. The CLI maps each kind to an exit code in one place (cli.ts); nothing below the
 * entry file exits the process.
 */

/** Bad flags, environment or config file: exit 2, raised before any API call. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The instance metadata service could not answer (down, disabled, refusing tokens, garbage). */
export class ImdsError extends Error {
  override readonly name = 'ImdsError';
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A newer VRRP transition was recorded while a takeover ran: exit 3. */
export class SupersededError extends Error {
  override readonly name = 'SupersededError';
}

/** The overall deadline passed before the work was done and verified. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

/** The node's identity contradicts the configuration (e.g. the VIP lies outside this subnet). */
export class TopologyError extends Error {
  override readonly name = 'TopologyError';
}

/** An EC2 call failed for good (not retryable, or retries ran out under the deadline). */
export class Ec2CallError extends Error {
  override readonly name = 'Ec2CallError';
  constructor(
    readonly action: string,
    readonly code: string,
    message: string,
    readonly unreachable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
