import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  type EC2ClientConfig,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { DeadlineError, Ec2CallError, errorMessage } from './errors.js';
import { type Clock, classify, type Deadline, errorCode } from './retry.js';
import { type RetryStrategy, StandardRetry } from './retry-strategy.js';

/** Where an Elastic IP points, with the fields compared exactly, never as substrings. */
export interface AddressView {
  readonly allocationId: string;
  readonly publicIp: string;
  readonly association: {
    readonly networkInterfaceId: string;
    readonly instanceId: string | null;
    readonly privateIpAddress: string;
  } | null;
}

export interface EniView {
  readonly networkInterfaceId: string;
  readonly primaryPrivateIp: string;
  readonly privateIps: readonly string[];
  readonly availabilityZone: string;
  readonly subnetId: string;
}

/** What a dry run of a mutating call says about this node's permission to make it. */
export type Permission =
  | { readonly permitted: true }
  | { readonly permitted: false; readonly reason: string };

/** The EC2 calls the agent makes, each retried on throttling and 5xx under the caller's deadline. */
export interface Ec2Gateway {
  describeAddresses(allocationIds: readonly string[], deadline: Deadline): Promise<AddressView[]>;
  /** The ENI in this VPC that holds ip as a private address, or null. */
  findPrivateIpHolder(vpcId: string, ip: string, deadline: Deadline): Promise<string | null>;
  describeNetworkInterface(networkInterfaceId: string, deadline: Deadline): Promise<EniView>;
  assignPrivateIp(networkInterfaceId: string, ip: string, deadline: Deadline): Promise<void>;
  associateAddress(
    allocationId: string,
    networkInterfaceId: string,
    ip: string,
    deadline: Deadline,
  ): Promise<void>;
  dryRunAssociate(
    allocationId: string,
    networkInterfaceId: string,
    ip: string,
    deadline: Deadline,
  ): Promise<Permission>;
}

/** Per attempt; the deadline bounds the whole. */
const ATTEMPT_TIMEOUT_MS = 5_000;

export interface Ec2ClientOptions {
  readonly region: string;
  readonly credentials: NonNullable<EC2ClientConfig['credentials']>;
}

/** One client for the whole run: retries are ours (deadline-aware), so the SDK makes one attempt. */
export function createEc2Client(options: Ec2ClientOptions): EC2Client {
  return new EC2Client({
    region: options.region,
    credentials: options.credentials,
    maxAttempts: 1,
    // Without throwOnRequestTimeout the SDK only warns when requestTimeout passes, and one hung
    // attempt would eat the whole deadline instead of being retried.
    requestHandler: {
      connectionTimeout: 2_000,
      requestTimeout: ATTEMPT_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
  });
}

export class SdkEc2Gateway implements Ec2Gateway {
  constructor(
    private readonly client: Pick<EC2Client, 'send'>,
    private readonly log: Logger,
    private readonly clock: Clock,
    /** One per process, shared by every call, as the SDK shares one per client. */
    private readonly retry: RetryStrategy = new StandardRetry(clock),
  ) {}

  async describeAddresses(
    allocationIds: readonly string[],
    deadline: Deadline,
  ): Promise<AddressView[]> {
    const out = await this.call('DescribeAddresses', deadline, (signal) =>
      this.client.send(new DescribeAddressesCommand({ AllocationIds: [...allocationIds] }), {
        abortSignal: signal,
      }),
    );
    return allocationIds.map((id) => {
      const found = (out.Addresses ?? []).find((a) => a.AllocationId === id);
      if (found === undefined || found.PublicIp === undefined) {
        throw new Ec2CallError(
          'DescribeAddresses',
          'MalformedResponse',
          `DescribeAddresses did not return allocation ${id}`,
          false,
        );
      }
      const associated =
        found.AssociationId !== undefined ||
        found.NetworkInterfaceId !== undefined ||
        found.PrivateIpAddress !== undefined;
      if (!associated) return { allocationId: id, publicIp: found.PublicIp, association: null };
      // An association without its interface or private IP cannot be read as "not associated":
      // acting on it could move an address on a guess.
      if (found.NetworkInterfaceId === undefined || found.PrivateIpAddress === undefined) {
        throw new Ec2CallError(
          'DescribeAddresses',
          'MalformedResponse',
          `DescribeAddresses answered allocation ${id} as associated but without its network interface or private IP`,
          false,
        );
      }
      return {
        allocationId: id,
        publicIp: found.PublicIp,
        association: {
          networkInterfaceId: found.NetworkInterfaceId,
          instanceId: found.InstanceId || null,
          privateIpAddress: found.PrivateIpAddress,
        },
      };
    });
  }

  async findPrivateIpHolder(vpcId: string, ip: string, deadline: Deadline): Promise<string | null> {
    const out = await this.call('DescribeNetworkInterfaces', deadline, (signal) =>
      this.client.send(
        new DescribeNetworkInterfacesCommand({
          Filters: [
            { Name: 'vpc-id', Values: [vpcId] },
            { Name: 'addresses.private-ip-address', Values: [ip] },
          ],
        }),
        { abortSignal: signal },
      ),
    );
    // "Nobody holds it" leads to a move, so it must be read, never assumed: EC2 answers an empty
    // set for no match, and every interface it returns with its id and its addresses.
    const enis = out.NetworkInterfaces;
    if (
      enis === undefined ||
      enis.some(
        (eni) =>
          eni.NetworkInterfaceId === undefined ||
          eni.PrivateIpAddresses === undefined ||
          eni.PrivateIpAddresses.some((p) => p.PrivateIpAddress === undefined),
      )
    ) {
      throw new Ec2CallError(
        'DescribeNetworkInterfaces',
        'MalformedResponse',
        `DescribeNetworkInterfaces answered without the interfaces or addresses needed to find who holds ${ip}`,
        false,
      );
    }
    // The filter narrows; the exact comparison decides.
    const holders = enis.filter((eni) =>
      (eni.PrivateIpAddresses ?? []).some((p) => p.PrivateIpAddress === ip),
    );
    return holders[0]?.NetworkInterfaceId ?? null;
  }

  async describeNetworkInterface(networkInterfaceId: string, deadline: Deadline): Promise<EniView> {
    const out = await this.call('DescribeNetworkInterfaces', deadline, (signal) =>
      this.client.send(
        new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [networkInterfaceId] }),
        {
          abortSignal: signal,
        },
      ),
    );
    const eni = (out.NetworkInterfaces ?? []).find(
      (n) => n.NetworkInterfaceId === networkInterfaceId,
    );
    const primary =
      eni?.PrivateIpAddresses?.find((p) => p.Primary === true)?.PrivateIpAddress ??
      eni?.PrivateIpAddress;
    if (eni === undefined || primary === undefined) {
      throw new Ec2CallError(
        'DescribeNetworkInterfaces',
        'MalformedResponse',
        `DescribeNetworkInterfaces did not describe ${networkInterfaceId} with a primary private IP`,
        false,
      );
    }
    return {
      networkInterfaceId,
      primaryPrivateIp: primary,
      privateIps: (eni.PrivateIpAddresses ?? []).flatMap((p) =>
        p.PrivateIpAddress ? [p.PrivateIpAddress] : [],
      ),
      availabilityZone: eni.AvailabilityZone ?? '',
      subnetId: eni.SubnetId ?? '',
    };
  }

  async assignPrivateIp(networkInterfaceId: string, ip: string, deadline: Deadline): Promise<void> {
    await this.call('AssignPrivateIpAddresses', deadline, (signal) =>
      this.client.send(assignCommand(networkInterfaceId, ip), { abortSignal: signal }),
    );
  }

  async associateAddress(
    allocationId: string,
    networkInterfaceId: string,
    ip: string,
    deadline: Deadline,
  ): Promise<void> {
    await this.call('AssociateAddress', deadline, (signal) =>
      this.client.send(associateCommand(allocationId, networkInterfaceId, ip, false), {
        abortSignal: signal,
      }),
    );
  }

  dryRunAssociate(
    allocationId: string,
    networkInterfaceId: string,
    ip: string,
    deadline: Deadline,
  ): Promise<Permission> {
    return this.dryRun('AssociateAddress', deadline, (signal) =>
      this.client.send(associateCommand(allocationId, networkInterfaceId, ip, true), {
        abortSignal: signal,
      }),
    );
  }

  /** DryRunOperation means permitted; UnauthorizedOperation means not; anything else is a failure. */
  private async dryRun(
    action: string,
    deadline: Deadline,
    send: (signal: AbortSignal) => Promise<unknown>,
  ): Promise<Permission> {
    try {
      await this.call(action, deadline, send);
    } catch (err) {
      if (err instanceof Ec2CallError && err.code === 'DryRunOperation') return { permitted: true };
      if (err instanceof Ec2CallError && err.code === 'UnauthorizedOperation') {
        return { permitted: false, reason: err.message };
      }
      throw err;
    }
    // EC2 never accepts a DryRun request as a real one; an endpoint that does is not EC2.
    throw new Ec2CallError(
      action,
      'DryRunIgnored',
      `${action} with DryRun=true succeeded instead of answering DryRunOperation`,
      false,
    );
  }

  /**
   * Sends one call, retrying throttling, 5xx and connection errors as the retry strategy (the
   * SDK's standard or adaptive mode) says, until the deadline.
   */
  private async call<T>(
    action: string,
    deadline: Deadline,
    send: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    let lastRetryCost: number | undefined;
    for (let attempt = 1; ; attempt++) {
      deadline.check(`before ${action}`);
      if (!(await this.retry.beforeAttempt(deadline))) {
        throw new DeadlineError(
          `deadline of ${Math.round(deadline.totalMs / 1000)} s would pass before the ${this.retry.mode} rate limiter lets ${action} go (attempt ${attempt})`,
        );
      }
      const started = Date.now();
      try {
        const result = await send(AbortSignal.timeout(Math.max(1, deadline.remainingMs())));
        this.retry.onSuccess(lastRetryCost);
        this.log.debug({ action, attempt, durationMs: Date.now() - started }, 'ec2 call');
        return result;
      } catch (err) {
        const kind = classify(err);
        const code = errorCode(err);
        const durationMs = Date.now() - started;
        if (code === 'DryRunOperation') {
          // An answer, not a failure: the request went through.
          this.retry.onSuccess(lastRetryCost);
          throw new Ec2CallError(action, code, 'dry run permitted', false, { cause: err });
        }
        if (deadline.expired()) {
          throw new DeadlineError(
            `deadline of ${Math.round(deadline.totalMs / 1000)} s passed during ${action} (${code})`,
          );
        }
        const decision = this.retry.onError(kind, attempt - 1);
        if (!decision.retry || decision.delayMs >= deadline.remainingMs()) {
          const reason =
            kind === 'fatal'
              ? explain(action, code, err)
              : `${action} still failing (${code}) after ${attempt} attempts when ${decision.retry ? 'the deadline ran out' : decision.reason}`;
          this.log.warn({ action, attempt, code, kind, durationMs, err }, 'ec2 call failed');
          throw new Ec2CallError(action, code, reason, kind === 'network', { cause: err });
        }
        lastRetryCost = decision.cost;
        this.log.info(
          {
            action,
            attempt,
            code,
            kind,
            durationMs,
            retryInMs: decision.delayMs,
            retryMode: this.retry.mode,
          },
          'ec2 call will be retried',
        );
        await this.clock.sleep(decision.delayMs);
      }
    }
  }
}

function assignCommand(networkInterfaceId: string, ip: string): AssignPrivateIpAddressesCommand {
  // AllowReassignment: the peer may still hold the IP; without it the second failover is refused.
  // EC2 offers no DryRun for this action: anything built here is a real move.
  return new AssignPrivateIpAddressesCommand({
    NetworkInterfaceId: networkInterfaceId,
    PrivateIpAddresses: [ip],
    AllowReassignment: true,
  });
}

function associateCommand(
  allocationId: string,
  networkInterfaceId: string,
  ip: string,
  dryRun: boolean,
): AssociateAddressCommand {
  // AllowReassociation: the EIP may still point at the peer; defaults have differed across SDKs.
  return new AssociateAddressCommand({
    AllocationId: allocationId,
    NetworkInterfaceId: networkInterfaceId,
    PrivateIpAddress: ip,
    AllowReassociation: true,
    ...(dryRun ? { DryRun: true } : {}),
  });
}

/** One sentence an operator can act on, for the errors retrying cannot fix. */
function explain(action: string, code: string, err: unknown): string {
  const detail = errorMessage(err).split('\n')[0]?.slice(0, 300) ?? '';
  switch (code) {
    case 'UnauthorizedOperation':
      return `${action} was refused (UnauthorizedOperation): the instance profile does not allow it for this address or ENI; deploy the CDK stack's policy or run \`eip-failover check\``;
    case 'InvalidAllocationID.NotFound':
      return `${action}: the Elastic IP allocation does not exist in this region (InvalidAllocationID.NotFound); check allocationId and region in the config`;
    case 'AuthFailure':
      return `${action}: AWS rejected the credentials (AuthFailure); check the instance profile is attached`;
    default:
      return `${action} failed (${code}): ${detail}`;
  }
}
