import { access, constants, mkdir } from 'node:fs/promises';
import type { AgentConfig } from './config.js';
import type { Ec2Gateway } from './ec2.js';
import { Ec2CallError, errorMessage, ImdsError } from './errors.js';
import { cidrContains, type NodeIdentity } from './identity.js';
import type { Deadline } from './retry.js';

export interface CheckLine {
  readonly name: string;
  readonly ok: boolean;
  /** The check could not be made (it would have changed something); it counts as no failure. */
  readonly skipped?: boolean;
  readonly detail: string;
}

export interface CheckReport {
  readonly lines: CheckLine[];
  /** IMDS or EC2 could not be reached, so some checks could not run. */
  readonly undetermined: boolean;
}

export interface CheckDeps {
  readonly ec2: Ec2Gateway;
  readonly identity: () => Promise<NodeIdentity>;
  readonly credentialSource: () => Promise<string>;
}

/** After deploy: config, IMDS, credentials, EC2 reachability, and permissions via DryRun. */
export async function runChecks(
  deps: CheckDeps,
  config: AgentConfig,
  deadline: Deadline,
): Promise<CheckReport> {
  const lines: CheckLine[] = [];
  const add = (name: string, ok: boolean, detail: string) => lines.push({ name, ok, detail });
  add(
    'config',
    true,
    `${config.configPath ?? 'flags only'}: ${config.addresses.length} address(es), deadline ${config.deadlineSeconds} s`,
  );

  try {
    await mkdir(config.stateDir, { recursive: true, mode: 0o750 });
    await access(config.stateDir, constants.W_OK);
    add('state dir', true, `${config.stateDir} is writable`);
  } catch (err) {
    add(
      'state dir',
      false,
      `${config.stateDir} is not writable by uid ${process.getuid?.() ?? '?'}: ${errorMessage(err)}`,
    );
  }

  let identity: NodeIdentity;
  try {
    identity = await deps.identity();
    add(
      'imds',
      true,
      `IMDSv2: ${identity.instanceId} in ${identity.availabilityZone}, ENI ${identity.networkInterfaceId} (${identity.macAddress}), subnet ${identity.subnetCidr}`,
    );
  } catch (err) {
    add('imds', false, errorMessage(err));
    return { lines, undetermined: err instanceof ImdsError };
  }

  try {
    add('credentials', true, await deps.credentialSource());
  } catch (err) {
    add('credentials', false, errorMessage(err));
    return { lines, undetermined: true };
  }

  for (const address of config.addresses) {
    if (address.privateIp !== undefined && !cidrContains(identity.subnetCidr, address.privateIp)) {
      add(
        'topology',
        false,
        `${address.privateIp} is outside this node's subnet ${identity.subnetCidr}; in a cross-AZ pair leave privateIp out`,
      );
    }
  }

  let undetermined = false;
  try {
    const views = await deps.ec2.describeAddresses(
      config.addresses.map((a) => a.allocationId),
      deadline,
    );
    add(
      'ec2',
      true,
      `DescribeAddresses: ${views.map((v) => `${v.allocationId} = ${v.publicIp}`).join(', ')}`,
    );
  } catch (err) {
    add('ec2', false, errorMessage(err));
    return { lines, undetermined: err instanceof Ec2CallError && err.unreachable };
  }

  for (const address of config.addresses) {
    const name = 'permission AssociateAddress';
    let ip = address.privateIp;
    try {
      // Inside the try: a failed lookup is a FAIL line in the report, not an unexpected error.
      ip ??= (await deps.ec2.describeNetworkInterface(identity.networkInterfaceId, deadline))
        .primaryPrivateIp;
      const permission = await deps.ec2.dryRunAssociate(
        address.allocationId,
        identity.networkInterfaceId,
        ip,
        deadline,
      );
      add(
        name,
        permission.permitted,
        permission.permitted
          ? `DryRun for ${address.allocationId} ${ip}: permitted`
          : permission.reason,
      );
    } catch (err) {
      add(name, false, errorMessage(err));
      if (err instanceof Ec2CallError && err.unreachable) undetermined = true;
    }
    if (address.privateIp !== undefined) {
      // EC2 has no DryRun for AssignPrivateIpAddresses: any probe would really move the VIP.
      lines.push({
        name: 'permission AssignPrivateIpAddresses',
        ok: true,
        skipped: true,
        detail: `not checkable without moving ${ip}: EC2 offers no DryRun for this action; the CDK stack's policy allows it on the pair's ENIs, and the first takeover proves it`,
      });
    }
  }
  return { lines, undetermined };
}

export function renderChecks(report: CheckReport): string {
  const width = Math.max(...report.lines.map((l) => l.name.length));
  return `${report.lines.map((l) => `${l.skipped ? 'skip' : l.ok ? 'ok  ' : 'FAIL'}  ${l.name.padEnd(width)}  ${l.detail}`).join('\n')}\n`;
}
