import type { AgentConfig } from './config.js';
import type { AddressView, Ec2Gateway } from './ec2.js';
import { errorMessage } from './errors.js';
import type { NodeIdentity } from './identity.js';
import { reporterGone } from './origin.js';
import type { Deadline } from './retry.js';
import type { NodeState, TakeoverOutcome, VrrpState } from './state.js';

/** The `status --json` document. Its keys are a stable contract: monitoring depends on them. */
export interface StatusReport {
  node: {
    instanceId: string | null;
    networkInterfaceId: string | null;
    vrrpState: VrrpState;
    vrrpStateSince: string | null;
  };
  addresses: Array<{
    allocationId: string;
    publicIp: string;
    privateIp: string;
    association: {
      networkInterfaceId: string;
      instanceId: string | null;
      privateIpAddress: string;
    } | null;
    privateIpHolder: string | null;
    heldByThisNode: boolean;
  }>;
  lastTakeover: {
    startedAt: string;
    finishedAt: string;
    durationMs: number;
    outcome: TakeoverOutcome;
  } | null;
  consistent: boolean;
  problems: string[];
}

export interface StatusDeps {
  readonly ec2: Ec2Gateway;
  readonly identity: () => Promise<NodeIdentity>;
  readonly readState: () => Promise<NodeState>;
}

/** Thrown when the report could not be built: IMDS or EC2 did not answer. Carries what was known. */
export class StatusUnknown extends Error {
  override readonly name = 'StatusUnknown';
  constructor(
    readonly partial: StatusReport,
    options?: ErrorOptions,
  ) {
    super(partial.problems.join('; '), options);
  }
}

/** VRRP state here (from the state dir) against where each address points in EC2. */
export async function collectStatus(
  deps: StatusDeps,
  config: AgentConfig,
  deadline: Deadline,
): Promise<StatusReport> {
  let state: NodeState;
  try {
    state = await deps.readState();
  } catch (err) {
    const report = emptyReport();
    report.problems.push(`state could not be determined: ${errorMessage(err)}`);
    throw new StatusUnknown(report, { cause: err });
  }
  const report: StatusReport = {
    node: {
      instanceId: null,
      networkInterfaceId: null,
      vrrpState: state.vrrpState,
      vrrpStateSince: state.vrrpStateSince,
    },
    addresses: [],
    lastTakeover: state.lastTakeover
      ? {
          startedAt: state.lastTakeover.startedAt,
          finishedAt: state.lastTakeover.finishedAt,
          durationMs: state.lastTakeover.durationMs,
          outcome: state.lastTakeover.outcome,
        }
      : null,
    consistent: false,
    problems: [],
  };

  let identity: NodeIdentity;
  let views: AddressView[];
  const privateIps: string[] = [];
  const holders: Array<string | null> = [];
  try {
    identity = await deps.identity();
    report.node.instanceId = identity.instanceId;
    report.node.networkInterfaceId = identity.networkInterfaceId;
    views = await deps.ec2.describeAddresses(
      config.addresses.map((a) => a.allocationId),
      deadline,
    );
    let primaryIp: string | undefined;
    for (const address of config.addresses) {
      if (address.privateIp !== undefined) {
        privateIps.push(address.privateIp);
        holders.push(
          await deps.ec2.findPrivateIpHolder(identity.vpcId, address.privateIp, deadline),
        );
      } else {
        primaryIp ??= (
          await deps.ec2.describeNetworkInterface(identity.networkInterfaceId, deadline)
        ).primaryPrivateIp;
        privateIps.push(primaryIp);
        holders.push(identity.networkInterfaceId);
      }
    }
  } catch (err) {
    report.problems.push(`state could not be determined: ${errorMessage(err)}`);
    throw new StatusUnknown(report, { cause: err });
  }

  const master = state.vrrpState === 'MASTER';
  /** Per address: does this node hold any part of it (the EIP, or the VIP in same-subnet mode)? */
  const holdsPart: boolean[] = [];
  config.addresses.forEach((address, i) => {
    const view = views[i] as AddressView;
    const privateIp = privateIps[i] as string;
    const holder = holders[i] ?? null;
    const association = view.association;
    const eipHere =
      association !== null && association.networkInterfaceId === identity.networkInterfaceId;
    const heldByThisNode =
      eipHere &&
      association.privateIpAddress === privateIp &&
      holder === identity.networkInterfaceId;
    // In cross-AZ mode the private IP is this node's own primary: only the EIP can be held.
    const vipHere = address.privateIp !== undefined && holder === identity.networkInterfaceId;
    holdsPart.push(eipHere || vipHere);
    report.addresses.push({
      allocationId: address.allocationId,
      publicIp: view.publicIp,
      privateIp,
      association,
      privateIpHolder: holder,
      heldByThisNode,
    });
    const name = `${address.allocationId} (${view.publicIp})`;
    const where =
      association === null ? 'is not associated' : `points at ${describeAssociation(association)}`;
    if (master && !heldByThisNode) {
      report.problems.push(
        `this node is MASTER but ${name} ${where}${holder !== identity.networkInterfaceId && address.privateIp !== undefined ? `, and ${privateIp} is on ${holder ?? 'no ENI'}` : ''}`,
      );
    } else if (!master && (eipHere || vipHere)) {
      report.problems.push(
        `this node is ${state.vrrpState} but ${eipHere ? `${name} points here` : `${privateIp} is still assigned here`}; the MASTER should hold it`,
      );
    }
    if (
      association !== null &&
      address.privateIp !== undefined &&
      holder !== null &&
      association.networkInterfaceId !== holder
    ) {
      report.problems.push(
        `${name} points at ${association.networkInterfaceId} but ${privateIp} is assigned to ${holder}`,
      );
    }
  });
  const gone = reporterGone(state.origin);
  if (gone !== null) {
    report.problems.push(
      `the recorded ${state.vrrpState} state is stale: ${gone}; check keepalived`,
    );
  }
  if (state.vrrpState === 'UNKNOWN') {
    report.problems.push(
      'no VRRP transition recorded yet: keepalived has not called the agent on this node',
    );
  }
  if (state.lastTakeover?.outcome === 'failed') {
    report.problems.push(
      `last takeover failed: ${state.lastTakeover.error ?? 'see the agent log'}`,
    );
  }
  report.consistent = master
    ? report.addresses.every((a) => a.heldByThisNode)
    : holdsPart.every((held) => !held);
  return report;
}

function describeAssociation(a: {
  networkInterfaceId: string;
  instanceId: string | null;
  privateIpAddress: string;
}): string {
  return `${a.networkInterfaceId}${a.instanceId ? ` (${a.instanceId})` : ''} ${a.privateIpAddress}`;
}

/** The human view: what an operator needs in one look during an incident. */
export function renderStatus(report: StatusReport, now: Date, undetermined = false): string {
  const lines: string[] = [];
  const node = report.node;
  const since = node.vrrpStateSince
    ? ` since ${node.vrrpStateSince} (${ago(node.vrrpStateSince, now)})`
    : '';
  lines.push(
    `node      ${node.instanceId ?? 'unknown instance'} / ${node.networkInterfaceId ?? 'unknown ENI'}`,
  );
  lines.push(`vrrp      ${node.vrrpState}${since}`);
  lines.push('');
  const rows = [
    ['ALLOCATION', 'PUBLIC IP', 'PRIVATE IP', 'EIP POINTS AT', 'PRIVATE IP ON', 'HERE'],
    ...report.addresses.map((a) => [
      a.allocationId,
      a.publicIp,
      a.privateIp,
      a.association ? describeAssociation(a.association) : 'not associated',
      a.privateIpHolder ?? 'no ENI',
      a.heldByThisNode ? 'yes' : 'no',
    ]),
  ];
  const widths =
    rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  if (report.addresses.length === 0) {
    lines.push('addresses unknown: EC2 was not asked or did not answer (see below)');
  } else {
    for (const row of rows) {
      lines.push(
        row
          .map((cell, col) => cell.padEnd(widths[col] ?? 0))
          .join('  ')
          .trimEnd(),
      );
    }
  }
  lines.push('');
  const last = report.lastTakeover;
  lines.push(
    `last      ${last ? `${last.outcome} in ${last.durationMs} ms, finished ${last.finishedAt} (${ago(last.finishedAt, now)})` : 'no takeover recorded'}`,
  );
  // UNKNOWN is not DRIFT: nothing says the address is wrong, only that it could not be seen.
  const verdict = undetermined ? 'UNKNOWN' : report.consistent ? 'CONSISTENT' : 'DRIFT';
  lines.push(`verdict   ${verdict}`);
  for (const problem of report.problems) lines.push(`  ! ${problem}`);
  return `${lines.join('\n')}\n`;
}

function ago(iso: string, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

function emptyReport(): StatusReport {
  return {
    node: {
      instanceId: null,
      networkInterfaceId: null,
      vrrpState: 'UNKNOWN',
      vrrpStateSince: null,
    },
    addresses: [],
    lastTakeover: null,
    consistent: false,
    problems: [],
  };
}
