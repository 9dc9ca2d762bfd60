/**
 * The warm variant's plumbing: one long-lived `eip-failover fifo` per node reading keepalived's
 * notify FIFO (the bench holds the write end open, as keepalived does), and a watcher on its JSON
 * log file that notices the "takeover verified" line as soon as the agent writes it.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  type FSWatcher,
  openSync,
  readFileSync,
  readSync,
  watch,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type BenchNode,
  BUNDLE,
  onCleanup,
  type Pair,
  runProcess,
  startProcess,
} from './harness.js';

export const VRRP_INSTANCE = 'VI_EIP';
const never = () => false;

/** Whether the bundle has the `fifo` command (commander prints the program's help otherwise). */
export async function hasFifoCommand(env: Record<string, string>): Promise<boolean> {
  const run = await runProcess(process.execPath, [BUNDLE, 'fifo', '--help'], env, 20_000);
  return run.code === 0 && /^Usage: eip-failover fifo\b/m.test(run.stdout);
}

interface LogLine {
  readonly msg?: string;
  readonly outcome?: string;
  readonly time?: string;
  readonly [key: string]: unknown;
}

/** A matching line and when this process read it (performance.now()). */
interface Match {
  readonly line: LogLine;
  readonly at: number;
}

interface Waiter {
  readonly done: (pred: LogLine) => boolean;
  readonly failed: (line: LogLine) => boolean;
  readonly resolve: (match: Match) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Follows a JSON-lines log file with inotify (fs.watch) and reads what was appended; a slow poll
 * backs the watch up. The time of a match is taken when this process reads the line.
 */
class LogFollower {
  private offset = 0;
  private partial = '';
  private readonly fd: number;
  private readonly watcher: FSWatcher;
  private readonly poll: NodeJS.Timeout;
  private waiters: Waiter[] = [];
  readonly lines: LogLine[] = [];

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    this.watcher = watch(path, () => this.drain());
    this.poll = setInterval(() => this.drain(), 100);
  }

  private drain(): void {
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.offset);
      if (n <= 0) break;
      this.offset += n;
      this.partial += buf.subarray(0, n).toString('utf8');
    }
    const at = performance.now();
    const parts = this.partial.split('\n');
    this.partial = parts.pop() ?? '';
    for (const text of parts) {
      if (text.trim() === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      this.lines.push(line);
      for (const w of [...this.waiters]) {
        if (w.done(line)) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve({ line, at });
        } else if (w.failed(line)) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.reject(new Error(`warm agent logged: ${JSON.stringify(line)}`));
        }
      }
    }
  }

  /** Resolves when a matching line is read. Register before acting. */
  waitFor(
    done: (line: LogLine) => boolean,
    failed: (line: LogLine) => boolean,
    timeoutMs: number,
    options: { includeSeen?: boolean } = {},
  ): Promise<Match> {
    if (options.includeSeen) {
      this.drain();
      const seen = this.lines.find(done);
      if (seen) return Promise.resolve({ line: seen, at: performance.now() });
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`no matching line in ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        done,
        failed,
        resolve: (match) => {
          clearTimeout(timer);
          resolve(match);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.push(waiter);
    });
  }

  failAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  close(): void {
    clearInterval(this.poll);
    this.watcher.close();
    closeSync(this.fd);
  }
}

/** One node's warm agent: the process, the write end of its FIFO, its log and state dir. */
export class WarmAgent {
  private fd: number | undefined;
  private stopping: Promise<{ code: number | null; signal: string | null }> | undefined;
  private exit: Promise<{ code: number | null; signal: string | null }>;
  private stderr = '';
  readonly follower: LogFollower;
  /**
   * For each takeover: when the bench read the "takeover verified" line minus the line's own
   * timestamp (1 ms resolution): what watching the log adds to the warm figure.
   */
  readonly watchLagMs: number[] = [];

  private constructor(
    readonly node: BenchNode,
    readonly child: ChildProcess,
    readonly fifo: string,
    readonly stateDir: string,
    log: string,
  ) {
    this.follower = new LogFollower(log);
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      this.stderr = (this.stderr + c).slice(-4_000);
    });
    child.stdout?.resume();
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.follower.failAll(
          new Error(
            `warm agent on node ${node.name} exited (code ${code}, signal ${signal}): ${this.stderr}`,
          ),
        );
        resolve({ code, signal });
      });
    });
  }

  static async start(pair: Pair, node: BenchNode): Promise<WarmAgent> {
    const { config, stateDir, log } = pair.agentConfig(node, 'warm');
    const fifo = join(pair.dir, `warm-${node.name}.fifo`);
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    writeFileSync(log, '');
    const child = startProcess(
      process.execPath,
      [BUNDLE, 'fifo', '--config', config, '--log-file', log, fifo],
      pair.env(node),
    );
    const agent = new WarmAgent(node, child, fifo, stateDir, log);
    onCleanup(async () => {
      await agent.stop();
    });
    await agent.openWriteEnd(15_000);
    // The agent warms up (identity, credentials, a connection) before keepalived says anything.
    await agent.follower
      .waitFor((l) => l.msg === 'fifo: warm', never, 15_000, { includeSeen: true })
      .catch(() => undefined);
    return agent;
  }

  /** keepalived opens the FIFO for writing once and keeps it: so does the bench. */
  private async openWriteEnd(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      try {
        // Non-blocking: ENXIO until the agent has opened the read end.
        this.fd = openSync(this.fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
        if (this.child.exitCode !== null || performance.now() > until) {
          throw new Error(
            `warm agent on node ${this.node.name} never opened ${this.fifo}: ${this.stderr}`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /** Writes one keepalived notify line: `INSTANCE "VI_EIP" MASTER 150`. */
  send(state: 'MASTER' | 'BACKUP'): void {
    if (this.fd === undefined) throw new Error('FIFO not open');
    const priority = state === 'MASTER' ? 150 : 100;
    writeSync(this.fd, `INSTANCE "${VRRP_INSTANCE}" ${state} ${priority}\n`);
  }

  /** MASTER written → "takeover verified" read from the log, in milliseconds. */
  async takeover(timeoutMs = 30_000): Promise<number> {
    const verified = this.follower.waitFor(
      (l) => l.msg === 'takeover verified',
      (l) =>
        l.msg === 'takeover failed' ||
        l.msg === 'fifo: takeover failed unexpectedly' ||
        l.outcome === 'failed' ||
        l.outcome === 'superseded' ||
        l.outcome === 'noop',
      timeoutMs,
    );
    const started = performance.now();
    this.send('MASTER');
    const { line, at } = await verified;
    if (line.time !== undefined) {
      this.watchLagMs.push(performance.timeOrigin + at - Date.parse(line.time));
    }
    return at - started;
  }

  /**
   * BACKUP written, and waited for until the state dir records it (as `release` would), then for
   * the agent's look at where the addresses went (it looks about a second after a non-MASTER
   * transition): in a real pair that look is long done before this node's next MASTER, and here it
   * must not land in another variant's run and count as that variant's EC2 calls.
   */
  async release(timeoutMs = 5_000): Promise<void> {
    const looked = this.follower
      .waitFor(
        (l) => typeof l.msg === 'string' && /^fifo: (looked|could not look)/.test(l.msg),
        never,
        timeoutMs,
      )
      .catch(() => undefined);
    this.send('BACKUP');
    const until = performance.now() + timeoutMs;
    for (;;) {
      if (this.vrrpState() === 'BACKUP') break;
      if (this.child.exitCode !== null || performance.now() > until) {
        throw new Error(
          `warm agent on node ${this.node.name} did not record BACKUP within ${timeoutMs} ms: ${this.stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await looked;
  }

  private vrrpState(): string | undefined {
    try {
      const state = JSON.parse(readFileSync(join(this.stateDir, 'state.json'), 'utf8')) as {
        vrrpState?: string;
      };
      return state.vrrpState;
    } catch {
      return undefined;
    }
  }

  /** Peak resident set size so far (VmHWM), KiB. */
  peakRssKiB(): number | undefined {
    try {
      const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
      const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
      return m?.[1] ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Closes the write end: the contract says the agent exits 0 on EOF. */
  stop(timeoutMs = 5_000): Promise<{ code: number | null; signal: string | null }> {
    this.stopping ??= this.stopOnce(timeoutMs);
    return this.stopping;
  }

  private async stopOnce(
    timeoutMs: number,
  ): Promise<{ code: number | null; signal: string | null }> {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const result = await this.exit;
    clearTimeout(timer);
    this.follower.close();
    return result;
  }
}
