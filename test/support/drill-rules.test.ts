import { describe, expect, it } from 'vitest';
import { overtakenReconcile } from '../drill/rules.js';

// The agent's JSON log lines as the drill reads them back (time, command, msg, outcome, durationMs).
const T0 = Date.parse('2026-11-23T10:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

const reconcileSuperseded = (endMs: number, durationMs: number) => ({
  time: iso(endMs),
  command: 'reconcile',
  msg: 'superseded by a newer transition',
  outcome: 'superseded',
  durationMs,
});

describe('the drill accepts exit 3 from a timer reconcile', () => {
  it('when a FIFO transition was recorded while it ran (the CI case: FAULT mid-retry)', () => {
    const log = [
      { time: iso(1970), command: 'fifo', msg: 'transition recorded', vrrpState: 'FAULT' },
      reconcileSuperseded(4170, 2580),
    ];
    expect(overtakenReconcile(log, T0 + 4200)).toBe(true);
  });

  it('when a notify hook recorded a release while it ran', () => {
    const log = [
      { time: iso(500), command: 'release', msg: 'transition recorded; no EC2 change' },
      reconcileSuperseded(900, 800),
    ];
    expect(overtakenReconcile(log, T0 + 950)).toBe(true);
  });

  it('not when the only transition came before the reconcile started', () => {
    const log = [
      { time: iso(0), command: 'fifo', msg: 'transition recorded', vrrpState: 'FAULT' },
      reconcileSuperseded(4170, 2580),
    ];
    expect(overtakenReconcile(log, T0 + 4200)).toBe(false);
  });

  it("not when the transition was the reconcile's own bookkeeping", () => {
    const log = [
      { time: iso(2000), command: 'reconcile', msg: 'transition recorded' },
      reconcileSuperseded(4170, 2580),
    ];
    expect(overtakenReconcile(log, T0 + 4200)).toBe(false);
  });

  it('not when the agent never said superseded (a bare exit 3)', () => {
    const log = [{ time: iso(2000), command: 'fifo', msg: 'transition recorded' }];
    expect(overtakenReconcile(log, T0 + 4200)).toBe(false);
  });

  it('not on a superseded line from an earlier, unrelated run', () => {
    const log = [
      { time: iso(1000), command: 'fifo', msg: 'transition recorded' },
      reconcileSuperseded(1500, 1000),
    ];
    expect(overtakenReconcile(log, T0 + 60_000)).toBe(false);
  });
});
