import type { Logger } from 'pino';
import type { AddressConfig, AgentConfig } from './config.js';
import type { AddressView, Ec2Gateway } from './ec2.js';
import { DeadlineError, errorMessage, SupersededError, TopologyError } from './errors.js';
import { cidrContains, localIpv4s, type NodeIdentity } from './identity.js';
import type { Imds } from './imds.js';
import { type Clock, Deadline } from './retry.js';
import { LockAbandoned, type StateStore, type TakeoverOutcome } from './state.js';

export interface TakeoverDeps {
  readonly ec2: Ec2Gateway;
  readonly imds: Imds;
  readonly state: StateStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly identity: () => Promise<NodeIdentity>;
}

export interface TakeoverRequest {
  readonly config: AgentConfig;
  /** The recorded transition this run serves; a newer one supersedes it. */
  readonly seq: number;
  readonly command: 'takeover' | 'reconcile';
  readonly failoverId: string;
  /** With dryRun, where the plan goes. */
  readonly print: (line: string) => void;
  /**
   * Leave an address that is no longer here alone (report it, send nothing): set for a reconcile
   * on a node that does not reclaim from its peer, after its own verified takeover.
   */
  readonly deferIfMoved?: boolean;
  /**
   * Allocations this process has seen elsewhere since it last moved anything here (the warm FIFO
   * mode keeps this): only this node moves an address to itself, so what was seen elsewhere is
   * still elsewhere, and the first look can be skipped — the move itself is the next call.
   */
  readonly knownAway?: ReadonlySet<string>;
}

export interface TakeoverResult {
  readonly outcome: TakeoverOutcome;
  /** The run found an address elsewhere and, as asked, left it there. */
  readonly deferred?: boolean;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly moved: readonly string[];
  readonly error?: string;
}

/** Addresses being moved, resolved against this node: where each must end up. */
interface Target {
  readonly allocationId: string;
  readonly privateIp: string;
  /** Secondary: the VIP must be assigned to this ENI first. Primary (cross-AZ): it is already here. */
  readonly secondary: boolean;
}

const VERIFY_FIRST_POLL_MS = 200;
const VERIFY_MAX_POLL_MS = 1_000;

/**
 * Makes this node hold every configured address, idempotently: it looks first, sends only the
 * calls that change something, stops as soon as a newer VRRP transition is recorded, and reports
 * success only once DescribeAddresses (and IMDS, for a secondary IP) show the result.
 */
export async function takeover(
  deps: TakeoverDeps,
  request: TakeoverRequest,
): Promise<TakeoverResult> {
  const { clock, log } = deps;
  const started = clock.now();
  const deadline = new Deadline(clock, request.config.deadlineSeconds * 1_000);
  const moved: string[] = [];
  let deferred = false;
  const finish = (outcome: TakeoverOutcome, error?: string): TakeoverResult => ({
    outcome,
    ...(deferred ? { deferred } : {}),
    startedAt: new Date(started).toISOString(),
    durationMs: clock.now() - started,
    moved,
    ...(error === undefined ? {} : { error }),
  });
  const stillCurrent = async (): Promise<boolean> => {
    const current = await deps.state.read();
    return current.seq === request.seq && current.vrrpState === 'MASTER';
  };
  const assertCurrent = async (before: string): Promise<void> => {
    deadline.check(`before ${before}`);
    if (!(await stillCurrent())) {
      throw new SupersededError(`a newer VRRP transition was recorded; stopped before ${before}`);
    }
  };

  let lock: { release(): Promise<void> } | undefined;
  try {
    const identity = await timed(log, 'identity', () => deps.identity());
    const targets = await timed(log, 'resolve', () =>
      resolveTargets(deps, identity, request.config.addresses, deadline),
    );

    if (request.config.dryRun) {
      await planOnly(deps, identity, targets, deadline, request.print);
      return finish('noop');
    }

    lock = await timed(log, 'lock', () =>
      deps.state.acquireTakeoverLock({
        waitMs: deadline.remainingMs(),
        // Nobody may hold it past a full deadline; a holder that old crashed or hung.
        staleAfterMs: request.config.deadlineSeconds * 1_000 + 30_000,
        isStillWanted: stillCurrent,
      }),
    );
    await assertCurrent('the first EC2 call');

    // The last DescribeAddresses answer after each address's last mutation: when it already shows
    // the address here it is the verification, and a further round trip would only repeat it.
    const seen = new Map<string, AddressView>();
    for (const target of targets) {
      const changed = await takeOne(deps, identity, target, deadline, assertCurrent, {
        deferIfMoved: request.deferIfMoved ?? false,
        knownAway: request.knownAway?.has(target.allocationId) ?? false,
        seen,
      });
      if (changed === 'deferred') deferred = true;
      else if (changed) moved.push(target.allocationId);
    }
    if (deferred && moved.length === 0) {
      log.warn(
        { outcome: 'deferred', durationMs: clock.now() - started },
        'an address was moved away after this node took it over; leaving it (reclaimFromPeer is false)',
      );
      return finish('noop');
    }
    if (moved.length === 0) {
      log.info(
        { outcome: 'noop', durationMs: clock.now() - started },
        'already held: nothing to do',
      );
      return finish('noop');
    }
    await timed(log, 'verify', () =>
      verify(deps, identity, targets, deadline, assertCurrent, seen),
    );
    log.info(
      { outcome: 'verified', moved, durationMs: clock.now() - started },
      'takeover verified',
    );
    return finish('verified');
  } catch (err) {
    if (err instanceof SupersededError || err instanceof LockAbandoned) {
      log.warn(
        { outcome: 'superseded', durationMs: clock.now() - started },
        'superseded by a newer transition',
      );
      return finish('superseded', errorMessage(err));
    }
    log.error({ err, outcome: 'failed', durationMs: clock.now() - started }, 'takeover failed');
    return finish('failed', errorMessage(err));
  } finally {
    await lock?.release();
  }
}

async function resolveTargets(
  deps: Pick<TakeoverDeps, 'ec2'>,
  identity: NodeIdentity,
  addresses: readonly AddressConfig[],
  deadline: Deadline,
): Promise<Target[]> {
  let primaryIp: string | undefined;
  const targets: Target[] = [];
  for (const address of addresses) {
    if (address.privateIp !== undefined) {
      if (!cidrContains(identity.subnetCidr, address.privateIp)) {
        throw new TopologyError(
          `private IP ${address.privateIp} is outside this node's subnet ${identity.subnetCidr} (${identity.subnetId}, ${identity.availabilityZone}); a secondary IP cannot move across subnets or AZs — for a cross-AZ pair leave privateIp out (cross-az mode)`,
        );
      }
      targets.push({
        allocationId: address.allocationId,
        privateIp: address.privateIp,
        secondary: true,
      });
    } else {
      primaryIp ??= (await deps.ec2.describeNetworkInterface(identity.networkInterfaceId, deadline))
        .primaryPrivateIp;
      targets.push({ allocationId: address.allocationId, privateIp: primaryIp, secondary: false });
    }
  }
  return targets;
}

function pointsHere(view: AddressView, identity: NodeIdentity, target: Target): boolean {
  return (
    view.association !== null &&
    view.association.networkInterfaceId === identity.networkInterfaceId &&
    view.association.privateIpAddress === target.privateIp
  );
}

async function observe(
  deps: Pick<TakeoverDeps, 'ec2'>,
  identity: NodeIdentity,
  target: Target,
  deadline: Deadline,
) {
  const [views, holder] = await Promise.all([
    deps.ec2.describeAddresses([target.allocationId], deadline),
    target.secondary
      ? deps.ec2.findPrivateIpHolder(identity.vpcId, target.privateIp, deadline)
      : Promise.resolve(identity.networkInterfaceId),
  ]);
  const view = views[0] as AddressView;
  return { view, ipHere: holder === identity.networkInterfaceId, holder };
}

interface TakeOneOptions {
  readonly deferIfMoved: boolean;
  /** Seen elsewhere since this process last moved it here: skip the first look. */
  readonly knownAway: boolean;
  /** Collects, per allocation, a DescribeAddresses answer newer than every mutation sent for it. */
  readonly seen: Map<string, AddressView>;
}

/** One address; returns whether any mutating call was sent, or that it was left elsewhere. */
async function takeOne(
  deps: TakeoverDeps,
  identity: NodeIdentity,
  target: Target,
  deadline: Deadline,
  assertCurrent: (before: string) => Promise<void>,
  options: TakeOneOptions,
): Promise<boolean | 'deferred'> {
  const log = deps.log.child({ allocationId: target.allocationId, privateIp: target.privateIp });
  let view: AddressView | null = null;
  let ipHere = false;
  if (options.knownAway && !options.deferIfMoved) {
    log.info({ knownAway: true }, 'seen elsewhere since this node last held it: moving at once');
  } else {
    const before = await timed(log, 'observe', () => observe(deps, identity, target, deadline));
    log.info(
      {
        association: before.view.association,
        privateIpHolder: before.holder,
        publicIp: before.view.publicIp,
      },
      'observed',
    );
    if (before.ipHere && pointsHere(before.view, identity, target)) {
      options.seen.set(target.allocationId, before.view);
      return false;
    }
    if (options.deferIfMoved) return 'deferred';
    view = before.view;
    ipHere = before.ipHere;
  }

  if (target.secondary && !ipHere) {
    await assertCurrent('AssignPrivateIpAddresses');
    await timed(log, 'assign', () =>
      deps.ec2.assignPrivateIp(identity.networkInterfaceId, target.privateIp, deadline),
    );
    // EC2 moves an EIP together with the private IP it is associated with: look before remapping.
    [view] = (await timed(log, 'reobserve', () =>
      deps.ec2.describeAddresses([target.allocationId], deadline),
    )) as [AddressView];
    options.seen.set(target.allocationId, view);
  }
  if (view === null || !pointsHere(view, identity, target)) {
    await assertCurrent('AssociateAddress');
    await timed(log, 'associate', () =>
      deps.ec2.associateAddress(
        target.allocationId,
        identity.networkInterfaceId,
        target.privateIp,
        deadline,
      ),
    );
    options.seen.delete(target.allocationId);
  }
  return true;
}

/** Bounded polling until EC2 (and IMDS, for a secondary IP) show every address here. */
async function verify(
  deps: TakeoverDeps,
  identity: NodeIdentity,
  targets: readonly Target[],
  deadline: Deadline,
  assertCurrent: (before: string) => Promise<void>,
  seen: ReadonlyMap<string, AddressView> = new Map(),
): Promise<void> {
  const ids = targets.map((t) => t.allocationId);
  const alreadySeen = targets.map((t) => seen.get(t.allocationId));
  let interval = VERIFY_FIRST_POLL_MS;
  let lastSeen = '';
  for (let round = 1; ; round++) {
    const views =
      round === 1 && alreadySeen.every((v) => v !== undefined)
        ? (alreadySeen as AddressView[])
        : await deps.ec2.describeAddresses(ids, deadline);
    const eipsHere = targets.every((t, i) => pointsHere(views[i] as AddressView, identity, t));
    const secondaries = targets.filter((t) => t.secondary).map((t) => t.privateIp);
    const local =
      eipsHere && secondaries.length > 0 ? await localIpv4s(deps.imds, identity.macAddress) : [];
    const ipsHere = secondaries.every((ip) => local.includes(ip));
    if (eipsHere && ipsHere) {
      deps.log.info({ rounds: round }, 'verified');
      return;
    }
    lastSeen = JSON.stringify(views.map((v) => v.association));
    deps.log.info({ round, eipsHere, ipsHere, seen: lastSeen }, 'not yet visible; polling');
    if (deadline.remainingMs() <= interval) {
      throw new DeadlineError(
        `not verified within the ${Math.round(deadline.totalMs / 1000)} s deadline: DescribeAddresses last showed ${lastSeen}${eipsHere ? ' and IMDS local-ipv4s did not list the private IP' : ''}`,
      );
    }
    await deps.clock.sleep(interval);
    interval = Math.min(VERIFY_MAX_POLL_MS, interval * 2);
    await assertCurrent('verification');
  }
}

/**
 * For a node that is not MASTER: which addresses are elsewhere now (read-only). The warm FIFO mode
 * looks once things settle, so that its next takeover can skip the look (TakeoverRequest.knownAway).
 */
export async function observeAway(
  deps: Pick<TakeoverDeps, 'ec2' | 'identity'>,
  addresses: readonly AddressConfig[],
  deadline: Deadline,
): Promise<{ readonly away: ReadonlySet<string>; readonly stillHere: number }> {
  const identity = await deps.identity();
  const targets = await resolveTargets(deps, identity, addresses, deadline);
  const away = new Set<string>();
  let stillHere = 0;
  for (const target of targets) {
    const { view, ipHere } = await observe(deps, identity, target, deadline);
    const elsewhere = target.secondary ? !ipHere : !pointsHere(view, identity, target);
    if (elsewhere) away.add(target.allocationId);
    else stillHere++;
  }
  return { away, stillHere };
}

/** --dry-run: the calls a takeover would make now, and none of them made. */
async function planOnly(
  deps: TakeoverDeps,
  identity: NodeIdentity,
  targets: readonly Target[],
  deadline: Deadline,
  print: (line: string) => void,
): Promise<void> {
  print(
    `dry run on ${identity.instanceId} (${identity.networkInterfaceId}): no mutating call is made`,
  );
  for (const target of targets) {
    const { view, ipHere, holder } = await observe(deps, identity, target, deadline);
    const here = pointsHere(view, identity, target);
    if (ipHere && here) {
      print(
        `${target.allocationId} (${view.publicIp}): already on ${identity.networkInterfaceId} ${target.privateIp}; nothing to do`,
      );
      continue;
    }
    if (!ipHere) {
      print(
        `would call AssignPrivateIpAddresses NetworkInterfaceId=${identity.networkInterfaceId} PrivateIpAddresses=${target.privateIp} AllowReassignment=true (now on ${holder ?? 'no ENI'})`,
      );
    }
    const from = view.association
      ? `${view.association.networkInterfaceId} ${view.association.privateIpAddress}`
      : 'nothing';
    print(
      `would call AssociateAddress AllocationId=${target.allocationId} NetworkInterfaceId=${identity.networkInterfaceId} PrivateIpAddress=${target.privateIp} AllowReassociation=true (${view.publicIp} now points at ${from}${ipHere ? '' : '; skipped if the EIP moves with the private IP'})`,
    );
    print(`would verify with DescribeAddresses${target.secondary ? ' and IMDS local-ipv4s' : ''}`);
  }
}

/** Runs one step and logs its duration, on success and on failure. */
export async function timed<T>(log: Logger, step: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    const result = await fn();
    log.info({ step, durationMs: Date.now() - started }, 'step done');
    return result;
  } catch (err) {
    log.debug({ step, durationMs: Date.now() - started, err }, 'step failed');
    throw err;
  }
}
