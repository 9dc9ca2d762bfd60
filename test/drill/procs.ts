import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Line {
  readonly at: number;
  readonly text: string;
}

/** A process the drill started; its output lines are kept with the time they arrived. */
export class Proc {
  readonly lines: Line[] = [];
  private readonly waiters: Array<{
    pattern: RegExp;
    since: number;
    resolve: (line: Line) => void;
  }> = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (text) => {
        const line = { at: Date.now(), text };
        this.lines.push(line);
        for (const waiter of [...this.waiters]) {
          if (line.at >= waiter.since && waiter.pattern.test(text)) {
            this.waiters.splice(this.waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      });
    }
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** The first line matching pattern that arrived at or after `since`, waiting up to timeoutMs. */
  waitFor(pattern: RegExp, timeoutMs: number, since = 0): Promise<Line> {
    const seen = this.lines.find((l) => l.at >= since && pattern.test(l.text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        pattern,
        since,
        resolve: (line: Line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Stops it, politely first; SIGKILL after a grace period. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Tracks every process the drill starts so that cleanup, also on SIGINT, stops them all. */
export class ProcessGroup {
  private readonly procs: Proc[] = [];

  start(
    name: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = process.env,
  ): Proc {
    const child = spawn(command, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new Proc(name, child);
    child.on('error', (err) =>
      proc.lines.push({ at: Date.now(), text: `spawn error: ${err.message}` }),
    );
    this.procs.push(proc);
    return proc;
  }

  inNs(
    ns: string,
    name: string,
    command: string,
    args: readonly string[],
    env?: NodeJS.ProcessEnv,
  ): Proc {
    return this.start(name, 'ip', ['netns', 'exec', ns, command, ...args], env);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', 2_000)));
  }
}
