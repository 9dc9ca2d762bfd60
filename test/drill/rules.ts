// Rules the drill judges agent runs by, apart from the scenarios so that a unit test can check them.

/**
 * A timer's reconcile that ended at `endedAt` with exit 3 (superseded) is right when keepalived
 * reported a transition on that node while it ran: the timer fires whenever it likes, so it can
 * be mid-retry when the node's MASTER ends. Its own log line gives how long it ran.
 */
export function overtakenReconcile(
  log: ReadonlyArray<Record<string, unknown>>,
  endedAt: number,
): boolean {
  const at = (l: Record<string, unknown>) => Date.parse(String(l.time));
  const ended = log.find(
    (l) =>
      l.command === 'reconcile' &&
      l.outcome === 'superseded' &&
      typeof l.durationMs === 'number' &&
      at(l) <= endedAt &&
      at(l) >= endedAt - 5_000,
  );
  if (ended === undefined) return false;
  const started = at(ended) - (ended.durationMs as number);
  return log.some(
    (l) =>
      // 'transition recorded' (a MASTER) or 'transition recorded; no EC2 change' (a release).
      String(l.msg).startsWith('transition recorded') &&
      l.command !== 'reconcile' &&
      at(l) >= started &&
      at(l) <= at(ended),
  );
}
