import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';
import { ownLikeParent } from './ownership.js';

export interface LogOptions {
  /** Appended to, directory created 0750, mode 0640; absent → stdout, or stderr (see below). */
  readonly logFile?: string;
  /** The command prints its own report on stdout (status, check, --dry-run): log to stderr. */
  readonly reportOnStdout?: boolean;
  /** Tests pass a stream to read the lines back. */
  readonly stream?: DestinationStream;
}

/** One JSON logger for the run; secrets never reach it (paths below are censored). */
export function createLogger(options: LogOptions): Logger {
  let fallbackReason: string | undefined;
  let destination = options.stream;
  if (destination === undefined && options.logFile !== undefined) {
    try {
      // Our own mkdir: pino's creates missing directories 0777 less the umask (0777 under umask 0).
      mkdirSync(dirname(options.logFile), { recursive: true, mode: 0o750 });
      destination = pino.destination({
        dest: options.logFile,
        append: true,
        // Synchronous: keepalived's hook may be killed right after it returns; no line may be lost.
        sync: true,
        mode: 0o640,
      });
      ownLikeParent(options.logFile);
    } catch (err) {
      // A log file this user cannot open must never stop a failover: log to stderr instead.
      fallbackReason = `cannot open log file ${options.logFile} (${(err as NodeJS.ErrnoException).code ?? String(err)}); logging to stderr`;
    }
  }
  destination ??= pino.destination({
    dest: options.reportOnStdout || fallbackReason ? 2 : 1,
    sync: true,
  });
  const logger = pino(
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
  if (fallbackReason !== undefined) logger.warn(fallbackReason);
  return logger;
}
