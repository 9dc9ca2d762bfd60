import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStaleTransition, type TransitionOrigin } from './origin.js';
import { ownLikeParent } from './ownership.js';
import type { Clock } from './retry.js';

export type VrrpState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP' | 'UNKNOWN';
export type TakeoverOutcome = 'verified' | 'noop' | 'failed' | 'superseded';

export interface TakeoverRecord {
  readonly failoverId: string;
  readonly command: string;
  /** The recorded transition this run served. */
  readonly seq?: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly outcome: TakeoverOutcome;
  readonly error?: string;
}

/** What the state dir remembers between invocations. */
export interface NodeState {
  /** Increases with every recorded VRRP transition; a takeover compares it before each mutation. */
  readonly seq: number;
  readonly vrrpState: VrrpState;
  readonly vrrpStateSince: string | null;
  readonly lastTakeover: TakeoverRecord | null;
  /** When the process that recorded the current state was forked (see TransitionOrigin). */
  readonly origin: TransitionOrigin | null;
}

export type RecordResult =
  | { readonly stale: false; readonly state: NodeState }
  | { readonly stale: true; readonly state: NodeState };

const EMPTY: NodeState = {
  seq: 0,
  vrrpState: 'UNKNOWN',
  vrrpStateSince: null,
  lastTakeover: null,
  origin: null,
};
const STATE_FILE = 'state.json';
const STATE_LOCK = 'state.lock';
const TAKEOVER_LOCK = 'takeover.lock';
const VRRP_STATES: ReadonlySet<string> = new Set(['MASTER', 'BACKUP', 'FAULT', 'STOP', 'UNKNOWN']);

/**
 * The state dir: state.json written atomically (temp file + rename), a short lock around each
 * read-modify-write, and the takeover lock that keeps two invocations' EC2 calls from interleaving.
 */
export class StateStore {
  constructor(
    readonly dir: string,
    private readonly clock: Clock,
  ) {}

  async read(): Promise<NodeState> {
    let text: string;
    try {
      text = await readFile(join(this.dir, STATE_FILE), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return EMPTY;
      throw new Error(
        `cannot read ${join(this.dir, STATE_FILE)} (${code ?? String(err)}); run as root or as keepalived's script user`,
        { cause: err },
      );
    }
    return parseState(text);
  }

  /**
   * Records a VRRP transition with a new sequence number, unless a transition that keepalived
   * reported later (forked later) is already recorded: then this one is stale and changes nothing.
   */
  async recordTransition(
    vrrpState: VrrpState,
    origin: TransitionOrigin | null = null,
  ): Promise<RecordResult> {
    let stale = false;
    const state = await this.update((current) => {
      if (isStaleTransition(origin, current.origin)) {
        stale = true;
        return current;
      }
      return {
        ...current,
        seq: current.seq + 1,
        vrrpState,
        vrrpStateSince: new Date(this.clock.now()).toISOString(),
        origin,
      };
    });
    return { stale, state };
  }

  async recordTakeover(record: TakeoverRecord): Promise<NodeState> {
    return this.update((current) => ({ ...current, lastTakeover: record }));
  }

  private async update(change: (current: NodeState) => NodeState): Promise<NodeState> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const lock = await acquireLock(join(this.dir, STATE_LOCK), {
      clock: this.clock,
      waitMs: 5_000,
      staleAfterMs: 10_000,
    });
    try {
      const next = change(await this.read());
      const tmp = join(this.dir, `.${STATE_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
      await writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o640 });
      ownLikeParent(tmp);
      await rename(tmp, join(this.dir, STATE_FILE));
      return next;
    } finally {
      await lock.release();
    }
  }

  /** Serializes takeovers. Waits while another runs; gives up when isStillWanted says so. */
  async acquireTakeoverLock(options: {
    waitMs: number;
    staleAfterMs: number;
    isStillWanted: () => Promise<boolean>;
  }): Promise<Lock> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    return acquireLock(join(this.dir, TAKEOVER_LOCK), { clock: this.clock, ...options });
  }
}

function parseState(text: string): NodeState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // A torn or foreign file cannot be trusted; the next transition rewrites it.
    return EMPTY;
  }
  const r = (raw ?? {}) as Record<string, unknown>;
  const seq = typeof r.seq === 'number' && Number.isSafeInteger(r.seq) && r.seq >= 0 ? r.seq : 0;
  const vrrpState =
    typeof r.vrrpState === 'string' && VRRP_STATES.has(r.vrrpState)
      ? (r.vrrpState as VrrpState)
      : 'UNKNOWN';
  const since = typeof r.vrrpStateSince === 'string' ? r.vrrpStateSince : null;
  const last =
    r.lastTakeover && typeof r.lastTakeover === 'object'
      ? (r.lastTakeover as TakeoverRecord)
      : null;
  const o = (r.origin ?? null) as Partial<TransitionOrigin> | null;
  const k = o?.keepalived;
  const keepalived =
    k && typeof k.pid === 'number' && typeof k.startTicks === 'number'
      ? { pid: k.pid, startTicks: k.startTicks }
      : null;
  const origin =
    o !== null && typeof o.bootId === 'string' && typeof o.startTicks === 'number'
      ? { bootId: o.bootId, startTicks: o.startTicks, keepalived }
      : null;
  return { seq, vrrpState, vrrpStateSince: since, lastTakeover: last, origin };
}

export interface Lock {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  token: string;
  acquiredAt: number;
}

/**
 * An exclusive lock file created with O_EXCL. A lock is stale when its owner process is gone or it
 * is older than staleAfterMs (no holder may legitimately keep it longer); a stale lock is moved
 * aside with rename, which only one contender can win.
 */
async function acquireLock(
  path: string,
  options: {
    clock: Clock;
    waitMs: number;
    staleAfterMs: number;
    isStillWanted?: () => Promise<boolean>;
  },
): Promise<Lock> {
  const token = randomBytes(8).toString('hex');
  const giveUpAt = options.clock.now() + options.waitMs;
  for (let round = 0; ; round++) {
    try {
      // 0644: holders of other uids must read the owner to judge a stale lock; it holds no secret.
      const handle = await open(path, 'wx', 0o644);
      const owner: LockOwner = { pid: process.pid, token, acquiredAt: options.clock.now() };
      await handle.writeFile(JSON.stringify(owner));
      await handle.close();
      ownLikeParent(path);
      return {
        release: async () => {
          // Only remove the lock if it is still ours (it may have been broken as stale).
          const current = await readOwner(path);
          if (current?.token === token) await rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(path, options)) {
      const aside = `${path}.stale.${process.pid}.${token}`;
      try {
        await rename(path, aside);
        await rm(aside, { force: true });
      } catch {
        // Another contender moved it first; try to take the lock again.
      }
      continue;
    }
    if (options.isStillWanted && !(await options.isStillWanted())) throw new LockAbandoned();
    if (options.clock.now() >= giveUpAt) throw new LockTimeout(path);
    await options.clock.sleep(Math.min(50 + round * 10, 200));
  }
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (
      typeof parsed.pid === 'number' &&
      typeof parsed.token === 'string' &&
      typeof parsed.acquiredAt === 'number'
    ) {
      return parsed as LockOwner;
    }
  } catch {
    // Unreadable or half-written: judged by its age below.
  }
  return null;
}

async function isStale(
  path: string,
  options: { clock: Clock; staleAfterMs: number },
): Promise<boolean> {
  const owner = await readOwner(path);
  if (owner === null) {
    // Half-written by a process that died between create and write; give a live writer a moment.
    try {
      const info = await stat(path);
      return options.clock.now() - info.mtimeMs > 1_000;
    } catch {
      return false;
    }
  }
  if (options.clock.now() - owner.acquiredAt > options.staleAfterMs) return true;
  return !processAlive(owner.pid);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class LockTimeout extends Error {
  override readonly name = 'LockTimeout';
  constructor(path: string) {
    super(`timed out waiting for ${path}; another eip-failover run holds it`);
  }
}

/** The waiter was superseded while it waited: the work it wanted to do is no longer wanted. */
export class LockAbandoned extends Error {
  override readonly name = 'LockAbandoned';
}
