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

/**
 * A value from outside (a flag, the config file) as a message may show it: JSON-quoted so control
 * characters and line breaks stay escaped, cut to a readable length, and safe for values nested
 * too deep for JSON.stringify.
 */
export function quote(value: unknown, max = 80): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Array.isArray(value) ? 'a list nested too deep' : 'a value nested too deep';
  }
  if (text.length <= max) return text;
  // A cut string keeps its closing quote, so the message still reads where the value ends.
  return text.startsWith('"') ? `${text.slice(0, max)}…"` : `${text.slice(0, max)}…`;
}

/** Line breaks out: every message is one line of a hook's stderr, which ends up in a log. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n\u2028\u2029]+\s*/g, ' ').trim();
}
