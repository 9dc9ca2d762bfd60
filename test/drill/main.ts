/**
 * The failover drill: the whole pattern on one machine. Real keepalived in network namespaces,
 * configs rendered by the project's Ansible role, the built agent, the EC2 emulator.
 *
 *   sudo npm run drill [-- --json] [--mode same-subnet|cross-az] [--hook-mode notify|fifo]
 *                      [--scenario N ...]
 *
 * scripts/drill.sh installs what is missing first, then runs this file.
 */

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { WorldMode } from '../support/world.js';
import { destroyTopology } from './netns.js';
import { DrillPair, type HookMode, type NodeName, RECONCILE_INTERVAL_S } from './pair.js';
import { DrillAssertion, SCENARIOS, type ScenarioContext } from './scenarios.js';
import {
  collectEvents,
  failoverFigures,
  renderScenario,
  renderTotals,
  type ScenarioResult,
  type TimelineEvent,
} from './timeline.js';

const WORK_DIR = '/run/eip-failover-drill';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    mode: { type: 'string', multiple: true },
    scenario: { type: 'string', multiple: true },
    'hook-mode': { type: 'string', multiple: true },
  },
});
const modes = (values.mode ?? ['same-subnet', 'cross-az']) as WorldMode[];
const hookModes = (values['hook-mode'] ?? ['notify', 'fifo']) as HookMode[];
for (const h of hookModes) {
  if (h !== 'notify' && h !== 'fifo') {
    process.stderr.write(`drill: --hook-mode takes notify or fifo, not "${h}"\n`);
    process.exit(2);
  }
}
const only = new Set((values.scenario ?? []).map(Number));
const say = (line: string) => {
  if (!values.json) process.stdout.write(`${line}\n`);
};

async function runMode(
  mode: WorldMode,
  hookMode: HookMode,
  results: ScenarioResult[],
): Promise<void> {
  say(
    `\n=== ${mode}, ${hookMode} hooks: setting up two instances in network namespaces, the EC2 emulator, and keepalived`,
  );
  const pair = await DrillPair.create(mode, hookMode, join(WORK_DIR, `${mode}-${hookMode}`), say);
  current = pair;
  try {
    await pair.render({ nopreempt: true, preemptDelay: 2 });
    for (const node of Object.values(pair.nodes)) {
      await pair.startImds(node);
      await pair.startLb(node);
    }
    pair.startReconcileTimer(RECONCILE_INTERVAL_S * 1_000);
    say(
      `world: EIP ${pair.world.publicIp} (${pair.world.allocationId}), VIP ${pair.world.vip ?? 'none'}; primary ${pair.world.primary.privateIp}, secondary ${pair.world.secondary.privateIp}`,
    );
    for (const scenario of SCENARIOS) {
      if (only.size > 0 && !only.has(scenario.id) && scenario.id !== 1) continue;
      if (scenario.hookModes && !scenario.hookModes.includes(hookMode)) continue;
      const startedAt = Date.now();
      const drillEvents: TimelineEvent[] = [];
      let faultAt = startedAt;
      const ctx: ScenarioContext = {
        pair,
        events: drillEvents,
        note: (what, node) =>
          drillEvents.push({ at: Date.now(), source: 'drill', node: node ?? null, what }),
        fault: (what, node) => {
          faultAt = Date.now();
          drillEvents.push({ at: faultAt, source: 'drill', node, what: `FAULT: ${what}` });
        },
      };
      let ok = true;
      let error: string | undefined;
      let measuredTo: NodeName | undefined;
      try {
        ({ measuredTo } = await scenario.run(ctx));
      } catch (err) {
        ok = false;
        error = err instanceof DrillAssertion ? err.message : ((err as Error).stack ?? String(err));
      }
      const events = await collectEvents(pair, startedAt, drillEvents);
      const figures = measuredTo ? failoverFigures(events, faultAt, measuredTo) : undefined;
      const result: ScenarioResult = {
        mode,
        hookMode,
        id: scenario.id,
        title: scenario.title,
        ok,
        startedAt,
        events,
        ...(error ? { error } : {}),
        ...(figures ? { figures } : {}),
      };
      results.push(result);
      say(`\n${renderScenario(result)}`);
      if (!ok) {
        say('  (stopping this mode: later scenarios build on this one)');
        break;
      }
    }
  } finally {
    await pair.teardown();
    current = undefined;
  }
}

let current: DrillPair | undefined;
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\ndrill: ${signal}: cleaning up namespaces and processes\n`);
    void (current?.teardown() ?? destroyTopology())
      .then(() => rm(WORK_DIR, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  });
}

const results: ScenarioResult[] = [];
const started = Date.now();
try {
  if (process.getuid?.() !== 0) throw new Error('run as root: sudo npm run drill');
  for (const mode of modes)
    for (const hookMode of hookModes) await runMode(mode, hookMode, results);
} catch (err) {
  if (!interrupted) process.stderr.write(`drill: ${(err as Error).message}\n`);
  await destroyTopology();
  process.exitCode = 1;
}
if (interrupted) {
  // The signal handler tears down and exits 130; an interrupted drill reports no totals.
  await new Promise(() => {});
}
await rm(WORK_DIR, { recursive: true, force: true });
if (values.json) {
  process.stdout.write(
    `${JSON.stringify({ results, durationMs: Date.now() - started }, null, 2)}\n`,
  );
} else if (results.length > 0) {
  say(`\n=== totals (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  say(renderTotals(results));
}
if (results.some((r) => !r.ok) || results.length === 0) process.exitCode = 1;
