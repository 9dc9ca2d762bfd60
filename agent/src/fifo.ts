import type { Logger } from 'pino';
import type { VrrpState } from './state.js';

/** One line keepalived writes to its notify FIFO: `INSTANCE "VI_EIP" MASTER 150`. */
export interface FifoLine {
  readonly type: 'INSTANCE' | 'GROUP';
  readonly name: string;
  readonly state: VrrpState;
}

const LINE = /^(INSTANCE|GROUP)\s+"([^"]*)"\s+([A-Z_]+)(?:\s+\d+)?\s*$/;
const STATES: ReadonlyMap<string, VrrpState> = new Map([
  ['MASTER', 'MASTER'],
  ['BACKUP', 'BACKUP'],
  ['FAULT', 'FAULT'],
  ['STOP', 'STOP'],
  ['DELETED', 'STOP'],
]);

/** Lines keepalived writes that are events, not state changes (MASTER_RX_LOWER_PRI, *_PRIORITY). */
const NOT_TRANSITIONS =
  /^(?:INSTANCE|GROUP)\s+"[^"]*"\s+(?:MASTER_RX_LOWER_PRI|MASTER_PRIORITY|BACKUP_PRIORITY)\b/;

/** A VRRP transition, or null for anything else keepalived may write (the caller logs it). */
export function parseFifoLine(line: string): FifoLine | null {
  const m = LINE.exec(line.trim());
  const state = m?.[3] === undefined ? undefined : STATES.get(m[3]);
  if (m === null || state === undefined) return null;
  return { type: m[1] as FifoLine['type'], name: m[2] ?? '', state };
}

/** What the FIFO loop needs from the rest of the agent. */
export interface FifoHandlers {
  /** Records the transition in the state dir; null when it was stale (nothing to do). */
  record(state: VrrpState): Promise<number | null>;
  /** Runs a warm takeover for the recorded transition seq; resolves to its exit code. */
  takeover(seq: number, knownAway: ReadonlySet<string>): Promise<number>;
  /** Read-only: which addresses are elsewhere now, and how many are still here. */
  lookAway(): Promise<{ away: ReadonlySet<string>; stillHere: number }>;
  readonly log: Logger;
  /** For the idle looks: must not keep the process alive on its own (an unref'd timer). */
  readonly sleep: (ms: number) => Promise<void>;
}

export interface FifoOptions {
  /** Only lines for this VRRP instance (or group) count; absent: every line. */
  readonly instance?: string;
  /** After a non-MASTER transition settles, when to look where the addresses went. */
  readonly lookAfterMs?: number;
  readonly lookAttempts?: number;
}

/**
 * The warm mode's core: transitions are recorded in the order keepalived wrote them, the newest
 * one wins (a burst is coalesced: only the last transition is acted on, and a takeover in flight
 * stops at its next step once a later line is recorded), and while this node is not MASTER it
 * learns where the addresses went, so that the next takeover starts with the move itself.
 */
export class FifoLoop {
  private latest: { seq: number; state: VrrpState } | null = null;
  private handled = -1;
  private pumping: Promise<void> | null = null;
  private away: ReadonlySet<string> = new Set();
  private closed = false;
  private takeovers = 0;
  private readonly lookAfterMs: number;
  private readonly lookAttempts: number;

  constructor(
    private readonly handlers: FifoHandlers,
    private readonly options: FifoOptions = {},
  ) {
    this.lookAfterMs = options.lookAfterMs ?? 1_000;
    this.lookAttempts = options.lookAttempts ?? 6;
  }

  /** Handles one line; resolves once the transition is recorded (not when acted on). */
  async line(text: string): Promise<void> {
    const { log } = this.handlers;
    if (text.trim() === '') return;
    const parsed = parseFifoLine(text);
    if (parsed === null && NOT_TRANSITIONS.test(text.trim())) {
      // notify_master_rx_lower_pri runs reconcile itself; priority changes move nothing.
      log.debug({ line: text }, 'fifo: not a state change; ignored');
      return;
    }
    if (parsed === null) {
      log.warn({ line: text.slice(0, 200) }, 'fifo: not a VRRP transition line; ignored');
      return;
    }
    if (this.options.instance !== undefined && parsed.name !== this.options.instance) {
      log.debug({ line: text }, 'fifo: another VRRP instance; ignored');
      return;
    }
    const seq = await this.handlers.record(parsed.state);
    if (seq === null) return;
    log.info({ seq, vrrpState: parsed.state, source: 'fifo' }, 'transition recorded');
    this.latest = { seq, state: parsed.state };
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
    });
  }

  /** At start: identity, credentials and a warm connection, and where the addresses are now. */
  warmUp(): void {
    const before = this.takeovers;
    this.handlers.lookAway().then(
      ({ away }) => {
        if (this.takeovers === before && this.latest?.state !== 'MASTER') this.away = away;
        this.handlers.log.info({ away: [...away] }, 'fifo: warm');
      },
      (err: unknown) => this.handlers.log.warn({ err }, 'fifo: warm-up failed; will retry on use'),
    );
  }

  /** At EOF: resolves when everything recorded so far has been acted on; stops looking. */
  async drain(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
    this.closed = true;
  }

  /** Acts on the newest transition until none is newer than the one last handled. */
  private async pump(): Promise<void> {
    while (this.latest !== null && this.latest.seq !== this.handled) {
      const { seq, state } = this.latest;
      this.handled = seq;
      if (state === 'MASTER') {
        const knownAway = this.away;
        this.takeovers++;
        // Whatever happens next, this node may have moved addresses here: forget what was seen.
        this.away = new Set();
        try {
          await this.handlers.takeover(seq, knownAway);
        } catch (err) {
          // The loop outlives any one takeover: the reconcile timer retries what failed here.
          this.handlers.log.error({ err, seq }, 'fifo: takeover failed unexpectedly');
        }
      } else {
        // Each look gives up by itself once a newer transition is recorded.
        void this.lookWhileIdle(seq);
      }
    }
  }

  /** While not MASTER: look where the addresses went, a few times if the peer is still moving them. */
  private async lookWhileIdle(seq: number): Promise<void> {
    let delay = this.lookAfterMs;
    for (let attempt = 1; attempt <= this.lookAttempts; attempt++) {
      await this.handlers.sleep(delay);
      if (this.closed || this.latest?.seq !== seq) return;
      try {
        const { away, stillHere } = await this.handlers.lookAway();
        if (this.latest?.seq !== seq) return;
        this.away = away;
        this.handlers.log.info(
          { away: [...away], stillHere, attempt },
          'fifo: looked where the addresses are while not MASTER',
        );
        if (stillHere === 0) return;
      } catch (err) {
        this.handlers.log.info({ err, attempt }, 'fifo: could not look; the next takeover will');
        return;
      }
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
