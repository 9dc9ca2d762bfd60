import {
  type DrillNode,
  type DrillPair,
  type HookMode,
  type NodeName,
  RECONCILE_INTERVAL_S,
} from './pair.js';
import { overtakenReconcile } from './rules.js';
import type { TimelineEvent } from './timeline.js';

/** What a scenario can use: the pair, a way to note drill actions, and the time its fault began. */
export interface ScenarioContext {
  readonly pair: DrillPair;
  note(what: string, node?: NodeName): void;
  /** Marks the moment the fault is injected; figures are measured from here. */
  fault(what: string, node: NodeName): void;
  readonly events: TimelineEvent[];
}

export interface Scenario {
  readonly id: number;
  readonly title: string;
  /** The hook modes it runs in; absent: both. */
  readonly hookModes?: readonly HookMode[];
  /** The node that must hold the EIP at the end; its takeover is measured from the fault. */
  run(ctx: ScenarioContext): Promise<{ measuredTo?: NodeName }>;
}

const FAILOVER_TIMEOUT_MS = 30_000;

export class DrillAssertion extends Error {
  override readonly name = 'DrillAssertion';
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DrillAssertion(message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const other = (name: NodeName): NodeName => (name === 'primary' ? 'secondary' : 'primary');

/** Waits until keepalived on `node` says `state`. */
async function waitVrrp(
  node: DrillNode,
  state: string,
  timeoutMs: number,
  since = 0,
): Promise<number> {
  const line = await node.keepalived?.waitFor(
    new RegExp(`Entering ${state} STATE`),
    timeoutMs,
    since,
  );
  assert(line, `${node.name}: keepalived is not running`);
  return line.at;
}

/** The holder of the EIP right now is `name`, and the VIP sits on the same ENI. */
async function assertHolder(pair: DrillPair, name: NodeName): Promise<void> {
  const holder = await pair.holderName();
  assert(holder === name, `the EIP points at ${holder ?? 'nothing'}, expected ${name}`);
  if (pair.world.vip !== undefined) {
    const vip = await pair.vipHolder();
    assert(
      vip === pair.nodes[name].world.networkInterfaceId,
      `the VIP is on ${vip ?? 'no ENI'}, expected ${name}'s ENI`,
    );
  }
}

/** `eip-failover status` on both nodes says consistent (exit 0) with the expected VRRP states. */
async function assertStatusConsistent(pair: DrillPair, master: NodeName): Promise<void> {
  for (const node of Object.values(pair.nodes)) {
    const { code, report } = await pair.status(node);
    const vrrp = (report.node as { vrrpState?: string } | undefined)?.vrrpState;
    assert(
      code === 0 && report.consistent === true,
      `status on ${node.name}: exit ${code}, consistent ${String(report.consistent)}, problems ${JSON.stringify(report.problems)}`,
    );
    const want = node.name === master ? 'MASTER' : 'BACKUP';
    assert(vrrp === want, `status on ${node.name} reports ${vrrp}, expected ${want}`);
  }
}

/**
 * Every agent run on either node since `since` ended with an allowed exit code. The FIFO reader
 * may also end with 143: keepalived sends its process group SIGTERM at every reload and at stop.
 * The guard must exit 0 (a reader was there) unless the scenario allows otherwise.
 */
async function assertHookExits(
  pair: DrillPair,
  since: number,
  allowed: readonly number[] = [0],
  fifoAllowed: readonly number[] = [0, 143],
  guardAllowed: readonly number[] = [0],
): Promise<void> {
  for (const node of Object.values(pair.nodes)) {
    const log = await pair.agentLog(node);
    for (const run of await pair.hookRuns(node)) {
      // keepalived's hooks and the reconcile timer; an operator's status may exit 1 on purpose.
      if (run.at < since || run.source === 'operator') continue;
      if (run.exitCode === 3 && run.source === 'timer' && overtakenReconcile(log, run.at)) continue;
      const ok =
        run.source === 'guard'
          ? guardAllowed
          : run.args.startsWith('fifo ')
            ? fifoAllowed
            : allowed;
      assert(
        ok.includes(run.exitCode),
        `${node.name}: \`${run.source === 'guard' ? 'eip-failover-fifo-guard' : `eip-failover ${run.args}`}\` exited ${run.exitCode}`,
      );
    }
  }
}

/** MASTER transitions the agent acted on (a notify hook's takeover, or the FIFO reader's). */
async function takeoverRuns(pair: DrillPair, name: NodeName, since: number): Promise<number> {
  return (await pair.agentLog(pair.nodes[name])).filter(
    (l) =>
      l.msg === 'transition recorded' &&
      l.vrrpState === 'MASTER' &&
      l.command !== 'reconcile' &&
      Date.parse(String(l.time)) >= since,
  ).length;
}

/** Agent log lines that mean work in progress (not the timer's reconcile, not idle looks). */
async function agentActivity(pair: DrillPair, node: DrillNode): Promise<number> {
  return (await pair.agentLog(node)).filter(
    (l) =>
      l.command !== 'reconcile' &&
      !String(l.msg).startsWith('fifo: looked') &&
      !String(l.msg).startsWith('fifo: could not look') &&
      l.msg !== 'fifo: warm',
  ).length;
}

/** The node keepalived currently has as MASTER (exactly one, or the assertion fails). */
function currentMaster(pair: DrillPair): NodeName {
  const masters = (['primary', 'secondary'] as const).filter(
    (n) => pair.vrrpState(pair.nodes[n]) === 'MASTER',
  );
  assert(
    masters.length === 1,
    `expected exactly one VRRP MASTER, found ${masters.length ? masters.join(' and ') : 'none'}`,
  );
  return masters[0] as NodeName;
}

async function failOverByLb(ctx: ScenarioContext, from: NodeName): Promise<NodeName> {
  const { pair } = ctx;
  const to = other(from);
  const since = Date.now();
  ctx.fault('load balancer killed: the health check will fail', from);
  await pair.stopLb(pair.nodes[from]);
  await waitVrrp(pair.nodes[from], 'FAULT', FAILOVER_TIMEOUT_MS, since);
  await waitVrrp(pair.nodes[to], 'MASTER', FAILOVER_TIMEOUT_MS, since);
  await pair.waitForHolder(to, FAILOVER_TIMEOUT_MS);
  return to;
}

async function restoreLb(ctx: ScenarioContext, name: NodeName): Promise<void> {
  const since = Date.now();
  ctx.note('load balancer restarted', name);
  await ctx.pair.startLb(ctx.pair.nodes[name]);
  await waitVrrp(ctx.pair.nodes[name], 'BACKUP', FAILOVER_TIMEOUT_MS, since);
}

async function restartKeepalived(
  ctx: ScenarioContext,
  name: NodeName,
  expect: 'BACKUP' | 'MASTER',
): Promise<void> {
  const since = Date.now();
  ctx.note('keepalived started again', name);
  ctx.pair.startKeepalived(ctx.pair.nodes[name]);
  await waitVrrp(ctx.pair.nodes[name], expect, FAILOVER_TIMEOUT_MS, since);
}

/** Lets hooks that keepalived started finish, so the next scenario starts from rest. */
async function settle(pair: DrillPair, quietMs = 2_500): Promise<void> {
  // A notify hook logs its run when it ends; the FIFO reader runs on, so its log lines count too.
  const fromKeepalived = async (node: DrillNode) =>
    (await pair.hookRuns(node)).filter((r) => r.source === 'keepalived').length +
    (await agentActivity(pair, node));
  let last = -1;
  for (let i = 0; i < 40; i++) {
    const count =
      (await fromKeepalived(pair.nodes.primary)) + (await fromKeepalived(pair.nodes.secondary));
    if (count === last) return;
    last = count;
    await sleep(quietMs);
  }
}

/** Kills the agent reading keepalived's FIFO on `name` (fifo mode); waits until keepalived notices. */
async function killFifoReader(ctx: ScenarioContext, name: NodeName): Promise<void> {
  const node = ctx.pair.nodes[name];
  const pid = await ctx.pair.fifoReaderPid(node);
  assert(pid !== null, `${name}: no FIFO reader running`);
  const since = Date.now();
  process.kill(pid, 'SIGKILL');
  await node.keepalived?.waitFor(/vrrp notify fifo script terminated/, 10_000, since);
  ctx.note(`FIFO reader (pid ${pid}) killed with SIGKILL`, name);
}

/** The guard on `name` found no reader and reloaded keepalived since `since`. */
async function assertGuardRepaired(
  ctx: ScenarioContext,
  name: NodeName,
  since: number,
): Promise<void> {
  // The guard is logged when it ends, which is after the new reader may already have acted.
  const repairs = async () =>
    (await ctx.pair.hookRuns(ctx.pair.nodes[name])).filter(
      (r) => r.source === 'guard' && r.at >= since && r.exitCode === 1,
    ).length;
  const deadline = Date.now() + 15_000;
  while ((await repairs()) === 0 && Date.now() < deadline) await sleep(200);
  const count = await repairs();
  assert(count === 1, `${name}: the guard repaired ${count} times, expected once`);
}

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 1,
    title: 'start: the EIP lands on the higher-priority node',
    async run(ctx) {
      const { pair } = ctx;
      ctx.fault('keepalived started on both nodes', 'primary');
      pair.startKeepalived(pair.nodes.primary);
      pair.startKeepalived(pair.nodes.secondary);
      await waitVrrp(pair.nodes.primary, 'MASTER', FAILOVER_TIMEOUT_MS);
      await waitVrrp(pair.nodes.secondary, 'BACKUP', FAILOVER_TIMEOUT_MS);
      await pair.waitForHolder('primary', FAILOVER_TIMEOUT_MS);
      await settle(pair);
      await assertHolder(pair, 'primary');
      await assertStatusConsistent(pair, 'primary');
      await assertHookExits(pair, 0);
      return { measuredTo: 'primary' };
    },
  },
  {
    id: 2,
    title: 'the load balancer dies on the MASTER',
    async run(ctx) {
      const since = Date.now();
      const to = await failOverByLb(ctx, 'primary');
      await settle(ctx.pair);
      await assertHolder(ctx.pair, to);
      await assertHookExits(ctx.pair, since);
      await restoreLb(ctx, 'primary');
      await settle(ctx.pair);
      await assertHolder(ctx.pair, to);
      await assertStatusConsistent(ctx.pair, to);
      return { measuredTo: to };
    },
  },
  {
    id: 3,
    title: 'keepalived is killed (SIGKILL) on the MASTER',
    async run(ctx) {
      const { pair } = ctx;
      const since = Date.now();
      const from = currentMaster(pair);
      const to = other(from);
      ctx.fault('keepalived killed with SIGKILL', from);
      await pair.killKeepalived(pair.nodes[from], 'SIGKILL');
      await waitVrrp(pair.nodes[to], 'MASTER', FAILOVER_TIMEOUT_MS, since);
      await pair.waitForHolder(to, FAILOVER_TIMEOUT_MS);
      await settle(pair);
      // The crashed node's state dir still says MASTER; its reconcile timer must leave the address be.
      await sleep(3 * RECONCILE_INTERVAL_S * 1_000);
      await assertHolder(pair, to);
      const refused = (await pair.agentLog(pair.nodes[from])).filter(
        (l) =>
          l.msg === 'recorded MASTER is stale: not reconciling' &&
          Date.parse(String(l.time)) >= since,
      );
      assert(
        refused.length > 0,
        `the crashed ${from}'s reconcile timer did not recognise its MASTER as stale`,
      );
      ctx.note(
        `${from}'s reconcile timer ran ${refused.length}× and left the address alone (its keepalived is dead)`,
        from,
      );
      await assertHookExits(pair, since);
      await restartKeepalived(ctx, from, 'BACKUP');
      await settle(pair);
      await assertHolder(pair, to);
      await assertStatusConsistent(pair, to);
      return { measuredTo: to };
    },
  },
  {
    id: 4,
    title: 'the failed node returns: nopreempt keeps the address, preemption returns it once',
    async run(ctx) {
      const { pair } = ctx;
      // Make the higher-priority primary the one that fails and returns.
      if (currentMaster(pair) !== 'primary') {
        await failOverByLb(ctx, 'secondary');
        await restoreLb(ctx, 'secondary');
        await settle(pair);
      }
      ctx.fault('keepalived stopped on the primary (MASTER)', 'primary');
      await pair.killKeepalived(pair.nodes.primary, 'SIGTERM');
      await pair.waitForHolder('secondary', FAILOVER_TIMEOUT_MS);
      await settle(pair);
      const back = Date.now();
      await restartKeepalived(ctx, 'primary', 'BACKUP');
      await sleep(6_000);
      await assertHolder(pair, 'secondary');
      assert(
        (await takeoverRuns(pair, 'primary', back)) === 0,
        'nopreempt: the returning primary took the address back',
      );
      ctx.note('nopreempt: the address stayed on the secondary');

      ctx.note('re-rendered with preemption (preempt_delay 2 s); keepalived reloaded (SIGHUP)');
      await pair.render({ nopreempt: false, preemptDelay: 2 });
      const reload = Date.now();
      for (const node of Object.values(pair.nodes)) node.keepalived?.child.kill('SIGHUP');
      await waitVrrp(pair.nodes.primary, 'MASTER', FAILOVER_TIMEOUT_MS, reload);
      await pair.waitForHolder('primary', FAILOVER_TIMEOUT_MS);
      await sleep(6_000);
      await assertHolder(pair, 'primary');
      const primaryTakeovers = await takeoverRuns(pair, 'primary', reload);
      const secondaryTakeovers = await takeoverRuns(pair, 'secondary', reload);
      assert(
        primaryTakeovers === 1 && secondaryTakeovers === 0,
        `preemption flapped: ${primaryTakeovers} takeovers on the primary, ${secondaryTakeovers} on the secondary`,
      );
      await assertHookExits(pair, back);

      ctx.note('back to the default (nopreempt)');
      await pair.render({ nopreempt: true, preemptDelay: 2 });
      for (const node of Object.values(pair.nodes)) node.keepalived?.child.kill('SIGHUP');
      await settle(pair);
      await assertStatusConsistent(pair, 'primary');
      return {};
    },
  },
  {
    id: 5,
    title: 'split brain: VRRP dropped both ways, then healed',
    async run(ctx) {
      const { pair } = ctx;
      const since = Date.now();
      assert(currentMaster(pair) === 'primary', 'scenario 5 starts with the primary as MASTER');
      ctx.fault('VRRP (protocol 112) dropped in both namespaces', 'secondary');
      for (const node of Object.values(pair.nodes)) await pair.blockVrrp(node);
      await waitVrrp(pair.nodes.secondary, 'MASTER', FAILOVER_TIMEOUT_MS, since);
      // The secondary's move is read from EC2's log, not polled: the primary's reconcile timer may
      // take the address back within milliseconds, faster than any poll of where it points.
      const took = await pair.waitForMoveTo('secondary', since, FAILOVER_TIMEOUT_MS);
      ctx.note('both nodes are MASTER; the secondary took the address');
      // The primary reclaims from its peer (reclaimFromPeer); the secondary must not fight back.
      const reclaim = await pair.waitForMoveTo('primary', since, FAILOVER_TIMEOUT_MS, took.seq);
      const reclaimedAt = Date.parse(reclaim.finishedAt);
      ctx.note('the primary’s reconcile timer took it back');
      await sleep(3 * RECONCILE_INTERVAL_S * 1_000);
      const moves = (await pair.emulator.actions()).filter(
        (a) => a.mutating && !a.dryRun && a.status === 200 && Date.parse(a.startedAt) > reclaimedAt,
      );
      assert(
        moves.length === 0,
        `ping-pong during the split: ${moves.map((a) => a.action).join(', ')}`,
      );
      await assertHolder(pair, 'primary');
      assert(
        pair.vrrpState(pair.nodes.secondary) === 'MASTER',
        'the secondary left MASTER during the split',
      );
      const split = await pair.status(pair.nodes.secondary);
      const problems = ((split.report.problems as string[] | undefined) ?? []).join('; ');
      assert(
        split.code === 1,
        `status on the secondary during the split: exit ${split.code}, expected 1 (drift)`,
      );
      assert(
        /this node is MASTER but .* points at/.test(problems),
        `status does not name the conflict: ${problems}`,
      );
      ctx.note(
        `no move for ${3 * RECONCILE_INTERVAL_S} s; status on secondary: exit 1, "${problems.slice(0, 80)}…"`,
        'secondary',
      );

      const healed = Date.now();
      ctx.note('VRRP allowed again');
      for (const node of Object.values(pair.nodes)) await pair.unblockVrrp(node);
      await waitVrrp(pair.nodes.secondary, 'BACKUP', FAILOVER_TIMEOUT_MS, healed);
      await settle(pair);
      await assertHolder(pair, 'primary');
      await assertStatusConsistent(pair, 'primary');
      await assertHookExits(pair, since);
      return {};
    },
  },
  {
    id: 6,
    title: 'the EC2 API throttles the takeover',
    async run(ctx) {
      const { pair } = ctx;
      const since = Date.now();
      const from = currentMaster(pair);
      await pair.emulator.injectFaults([
        { action: 'AssociateAddress', throttle: 3 },
        { action: 'AssignPrivateIpAddresses', throttle: 3 },
        { action: 'DescribeAddresses', throttle: 2 },
      ]);
      ctx.note(
        'EC2 set to answer RequestLimitExceeded to the next 3 Assign/Associate and 2 Describe calls',
      );
      const to = await failOverByLb(ctx, from);
      await settle(pair);
      await pair.emulator.resetFaults();
      const throttled = (await pair.emulator.actions()).filter(
        (a) => a.fault === 'throttle' && Date.parse(a.startedAt) >= since,
      );
      assert(
        throttled.length >= 3,
        `expected the takeover to meet throttling, saw ${throttled.length} throttled calls`,
      );
      ctx.note(`${throttled.length} calls were throttled; the agent retried under its deadline`);
      await assertHolder(pair, to);
      await assertHookExits(pair, since);
      await restoreLb(ctx, from);
      await settle(pair);
      await assertStatusConsistent(pair, to);
      return { measuredTo: to };
    },
  },
  {
    id: 7,
    title: 'flapping: the health check toggles several times within seconds',
    async run(ctx) {
      const { pair } = ctx;
      const since = Date.now();
      const start = currentMaster(pair);
      ctx.fault('health check toggled 6 times, 1.2 s apart', start);
      for (let i = 0; i < 6; i++) {
        const node = pair.nodes[i % 2 === 0 ? start : other(start)];
        if (node.lb) await pair.stopLb(node);
        else await pair.startLb(node);
        await sleep(1_200);
      }
      for (const node of Object.values(pair.nodes)) if (!node.lb) await pair.startLb(node);
      ctx.note('both load balancers healthy again; waiting for VRRP and the agents to settle');
      await sleep(5_000);
      await settle(pair, 3_000);
      const master = currentMaster(pair);
      await assertHolder(pair, master);
      await assertStatusConsistent(pair, master);
      // A takeover that a later transition overtook exits 3; nothing may fail.
      await assertHookExits(pair, since, [0, 3]);
      ctx.note(`final MASTER ${master} holds the address`, master);
      return {};
    },
  },
  {
    id: 8,
    title: 'the FIFO reader dies: keepalived does not restart it, the reconcile timer does',
    hookModes: ['fifo'],
    async run(ctx) {
      const { pair } = ctx;
      const start = Date.now();
      const gap = 3 * RECONCILE_INTERVAL_S * 1_000;
      // The primary is the node that reclaims from its peer: make it the blind BACKUP first.
      if (currentMaster(pair) === 'primary') {
        await failOverByLb(ctx, 'primary');
        await restoreLb(ctx, 'primary');
        await settle(pair);
      }
      const reloads = (since: number) =>
        (pair.nodes.primary.keepalived?.lines ?? []).filter(
          (l) => l.at >= since && /Reloading \.\.\./.test(l.text),
        ).length;

      // 1. The BACKUP's reader dies, then the BACKUP must take over. The timer is held until
      // keepalived has made the blind node MASTER, as a one-minute timer would likely be.
      await pair.pauseTimer();
      const blind = Date.now();
      await killFifoReader(ctx, 'primary');
      ctx.fault('load balancer killed on the secondary (MASTER)', 'secondary');
      await pair.stopLb(pair.nodes.secondary);
      await waitVrrp(pair.nodes.primary, 'MASTER', FAILOVER_TIMEOUT_MS, blind);
      await sleep(2_000);
      assert(
        (await pair.fifoReaderPid(pair.nodes.primary)) === null && reloads(blind) === 0,
        'keepalived restarted the FIFO reader by itself',
      );
      assert(
        (await pair.holderName()) === 'secondary',
        'the EIP moved although nobody read the transition',
      );
      ctx.note('2 s after VRRP MASTER: no reader, no takeover; the timer runs again', 'primary');
      pair.resumeTimer();
      await pair.waitForHolder('primary', FAILOVER_TIMEOUT_MS);
      await assertGuardRepaired(ctx, 'primary', blind);
      await restoreLb(ctx, 'secondary');
      await settle(pair);
      await assertHolder(pair, 'primary');
      await assertStatusConsistent(pair, 'primary');

      // 2. The MASTER's reader dies, then the MASTER fails: its state dir still says MASTER, and
      // without the guard its reconcile (reclaimFromPeer) would pull the address back.
      await pair.pauseTimer();
      const second = Date.now();
      await killFifoReader(ctx, 'primary');
      ctx.note('load balancer killed on the primary (MASTER, no FIFO reader)', 'primary');
      await pair.stopLb(pair.nodes.primary);
      await waitVrrp(pair.nodes.primary, 'FAULT', FAILOVER_TIMEOUT_MS, second);
      await pair.waitForHolder('secondary', FAILOVER_TIMEOUT_MS);
      pair.resumeTimer();
      await sleep(gap);
      await assertHolder(pair, 'secondary');
      await assertGuardRepaired(ctx, 'primary', second);
      assert(
        (await takeoverRuns(pair, 'primary', second)) === 0,
        'the primary acted on its stale MASTER',
      );
      ctx.note(`the address stayed on the secondary for ${gap / 1000} s`);
      await restoreLb(ctx, 'primary');
      await settle(pair);
      await assertHolder(pair, 'secondary');
      await assertStatusConsistent(pair, 'secondary');
      // Readers killed (137) or ended by the reloads (143); the guard repaired twice, on the primary.
      await assertHookExits(pair, start, [0], [0, 137, 143], [0, 1]);
      const secondaryRepairs = (await pair.hookRuns(pair.nodes.secondary)).filter(
        (r) => r.source === 'guard' && r.at >= start && r.exitCode !== 0,
      );
      assert(secondaryRepairs.length === 0, 'the guard acted on the secondary, whose reader lived');
      return {};
    },
  },
];
