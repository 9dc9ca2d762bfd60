import type { ActionRecord } from '../support/emulator.js';
import type { DrillNode, DrillPair, NodeName } from './pair.js';

export interface TimelineEvent {
  readonly at: number;
  readonly source: 'drill' | 'keepalived' | 'agent' | 'ec2' | 'guard';
  readonly node: NodeName | null;
  readonly what: string;
}

/** How long one failover took, split where the time went. */
export interface FailoverFigures {
  /** Fault injected → keepalived on the new node entered MASTER. */
  readonly detectionMs: number;
  /** keepalived MASTER → the agent reported the EIP verified. */
  readonly agentMs: number;
  /** Fault injected → EIP verified. */
  readonly totalMs: number;
}

export interface ScenarioResult {
  readonly mode: string;
  /** notify hooks or the FIFO reader. */
  readonly hookMode: string;
  readonly id: number;
  readonly title: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly startedAt: number;
  readonly figures?: FailoverFigures;
  readonly events: TimelineEvent[];
}

/** Collects what happened between `since` and now from keepalived, the agents and the emulator. */
export async function collectEvents(
  pair: DrillPair,
  since: number,
  drillEvents: TimelineEvent[],
): Promise<TimelineEvent[]> {
  const events: TimelineEvent[] = [...drillEvents];
  for (const node of Object.values(pair.nodes)) {
    for (const line of node.keepalived?.lines ?? []) {
      if (line.at < since) continue;
      const m = /Entering (MASTER|BACKUP|FAULT) STATE/.exec(line.text);
      const what = m
        ? `VRRP ${m[1]}`
        : KEEPALIVED_MESSAGES.find(([pattern]) => pattern.test(line.text))?.[1];
      if (what === undefined) continue;
      const restarted = what.startsWith('reload') && pair.hookMode === 'fifo';
      events.push({
        at: line.at,
        source: 'keepalived',
        node: node.name,
        what: restarted ? `${what}: starts a new FIFO reader` : what,
      });
    }
    events.push(...(await agentEvents(pair, node, since)));
  }
  for (const g of pair.guardEvents) {
    if (g.at >= since) events.push({ at: g.at, source: 'guard', node: g.node, what: g.what });
  }
  const actions = await pair.emulator.actions();
  events.push(...ec2Events(actions, since));
  return events.sort((a, b) => a.at - b.at);
}

/** What keepalived says about its FIFO reader and reloads (fifo mode). */
const KEEPALIVED_MESSAGES: ReadonlyArray<readonly [RegExp, string]> = [
  [/vrrp notify fifo script terminated/, 'FIFO reader terminated (keepalived starts no new one)'],
  [/Reloading \.\.\./, 'reload (SIGHUP)'],
];

const AGENT_MESSAGES: Record<string, string> = {
  'transition recorded': 'MASTER recorded, takeover starts',
  'takeover verified': 'EIP verified',
  'already held: nothing to do': 'already held (no call)',
  'takeover failed': 'takeover FAILED',
  'superseded by a newer transition': 'superseded',
  'stale MASTER transition: a later one is already recorded; not acting':
    'stale MASTER hook: not acting',
  'recorded MASTER is stale: not reconciling':
    'recorded MASTER is stale (keepalived gone): left alone',
  'an address was moved away after this node took it over; leaving it (reclaimFromPeer is false)':
    'address on the peer: left alone (reclaimFromPeer false)',
};
/** A reconcile that found nothing to do says nothing on the timeline: the timer runs every few seconds. */
const QUIET_RECONCILE = new Set([
  'already held: nothing to do',
  'not MASTER: nothing to reconcile',
]);

async function agentEvents(
  pair: DrillPair,
  node: DrillNode,
  since: number,
): Promise<TimelineEvent[]> {
  const out: TimelineEvent[] = [];
  for (const line of await pair.agentLog(node)) {
    const at = Date.parse(String(line.time));
    const msg = String(line.msg);
    if (at < since) continue;
    const reconcile = line.command === 'reconcile';
    if (reconcile && QUIET_RECONCILE.has(msg)) continue;
    if (msg === 'transition recorded' && line.source === 'fifo' && line.vrrpState !== 'MASTER') {
      // The FIFO reader records every transition with this message; only MASTER starts a takeover.
      out.push({
        at,
        source: 'agent',
        node: node.name,
        what: `${String(line.vrrpState)} recorded (fifo)`,
      });
    } else if (msg === 'transition recorded; no EC2 change') {
      out.push({
        at,
        source: 'agent',
        node: node.name,
        what: `${String(line.vrrpState)} recorded`,
      });
    } else if (AGENT_MESSAGES[msg]) {
      const took =
        typeof line.durationMs === 'number' && msg !== 'transition recorded'
          ? ` (${line.durationMs} ms)`
          : '';
      const fromFifo = line.source === 'fifo' && msg === 'transition recorded' ? ' (fifo)' : '';
      const what =
        reconcile && msg === 'transition recorded'
          ? 'reconcile starts'
          : `${AGENT_MESSAGES[msg]}${fromFifo}`;
      out.push({
        at,
        source: 'agent',
        node: node.name,
        what: `${reconcile ? 'reconcile: ' : ''}${what}${took}`,
      });
    }
  }
  return out;
}

function ec2Events(actions: readonly ActionRecord[], since: number): TimelineEvent[] {
  return actions
    .filter((a) => a.mutating || a.fault !== null)
    .filter((a) => Date.parse(a.finishedAt) >= since)
    .map((a) => ({
      at: Date.parse(a.finishedAt),
      source: 'ec2' as const,
      node: null,
      what: `${a.action}${a.dryRun ? ' (DryRun)' : ''} → ${a.status}${a.errorCode ? ` ${a.errorCode}` : ''}${a.fault ? ' [injected]' : ''}`,
    }));
}

/** The failover figures of a scenario: from the fault to the new MASTER and to the agent's verification. */
export function failoverFigures(
  events: readonly TimelineEvent[],
  faultAt: number,
  to: NodeName,
): FailoverFigures | undefined {
  const master = events.find(
    (e) =>
      e.source === 'keepalived' && e.node === to && e.what === 'VRRP MASTER' && e.at >= faultAt,
  );
  const verified = events.find(
    (e) =>
      e.source === 'agent' && e.node === to && e.what.startsWith('EIP verified') && e.at >= faultAt,
  );
  if (!master || !verified) return undefined;
  return {
    detectionMs: master.at - faultAt,
    agentMs: verified.at - master.at,
    totalMs: verified.at - faultAt,
  };
}

export function renderScenario(result: ScenarioResult): string {
  const lines = [
    `${result.ok ? 'PASS' : 'FAIL'}  [${result.mode}, ${result.hookMode}] ${result.id}. ${result.title}`,
  ];
  for (const e of result.events) {
    const t = `+${((e.at - result.startedAt) / 1000).toFixed(2)} s`.padStart(10);
    lines.push(`  ${t}  ${e.source.padEnd(10)} ${(e.node ?? '').padEnd(9)} ${e.what}`);
  }
  if (result.figures) {
    const f = result.figures;
    lines.push(
      `  failover: detection ${secs(f.detectionMs)} + agent ${secs(f.agentMs)} = ${secs(f.totalMs)} from fault to EIP verified`,
    );
  }
  if (result.error) lines.push(`  error: ${result.error}`);
  return lines.join('\n');
}

export function renderTotals(results: readonly ScenarioResult[]): string {
  const rows = [
    ['mode', 'hooks', 'scenario', 'result', 'detection', 'agent', 'total'],
    ...results.map((r) => [
      r.mode,
      r.hookMode,
      `${r.id}. ${r.title}`,
      r.ok ? 'PASS' : 'FAIL',
      r.figures ? secs(r.figures.detectionMs) : '',
      r.figures ? secs(r.figures.agentMs) : '',
      r.figures ? secs(r.figures.totalMs) : '',
    ]),
  ];
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  const table = rows.map(
    (r) => `| ${r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join(' | ')} |`,
  );
  table.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  const passed = results.filter((r) => r.ok).length;
  return `${table.join('\n')}\n\n${passed} passed, ${results.length - passed} failed`;
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
