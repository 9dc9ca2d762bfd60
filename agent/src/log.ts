import pino, { type DestinationStream, type Logger } from 'pino';

export interface LogOptions {
  /** Appended to, directory created, mode 0640; absent → stdout, or stderr (see below). */
  readonly logFile?: string;
  /** The command prints its own report on stdout (status, check, --dry-run): log to stderr. */
  readonly reportOnStdout?: boolean;
  /** Tests pass a stream to read the lines back. */
  readonly stream?: DestinationStream;
}

/** One JSON logger for the run; secrets never reach it (paths below are censored). */
export function createLogger(options: LogOptions): Logger {
  const destination =
    options.stream ??
    pino.destination({
      dest: options.logFile ?? (options.reportOnStdout ? 2 : 1),
      append: true,
      mkdir: options.logFile !== undefined,
      // Synchronous: keepalived's hook may be killed right after it returns; no line may be lost.
      sync: true,
      ...(options.logFile !== undefined ? { mode: 0o640 } : {}),
    });
  return pino(
    {
      name: 'eip-failover',
      level: 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'token',
          '*.token',
          'sessionToken',
          '*.sessionToken',
          'secretAccessKey',
          '*.secretAccessKey',
          'headers',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
