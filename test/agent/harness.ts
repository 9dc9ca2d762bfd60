import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  EC2ServiceException,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach } from 'vitest';
import { type RunDeps, run } from '../../agent/src/cli.js';
import { ImdsError } from '../../agent/src/errors.js';
import type { Imds } from '../../agent/src/imds.js';
import type { Clock } from '../../agent/src/retry.js';
import type { StubNode } from '../support/imds-stub.js';

export const ALLOCATION_ID = 'eipalloc-0123456789abcdef0';
export const PUBLIC_IP = '203.0.113.7';
export const VIP = '10.0.0.50';

export const THIS_NODE: StubNode = {
  instanceId: 'i-0aaaaaaaaaaaaaaa1',
  region: 'eu-central-1',
  availabilityZone: 'eu-central-1a',
  macAddress: '0a:00:00:00:00:a1',
  networkInterfaceId: 'eni-0aaaaaaaaaaaaaaa1',
  vpcId: 'vpc-0123456789abcdef0',
  subnetId: 'subnet-0123456789abcdef0',
  subnetCidr: '10.0.0.0/24',
  primaryPrivateIp: '10.0.0.11',
};
export const PEER = {
  instanceId: 'i-0bbbbbbbbbbbbbbb2',
  networkInterfaceId: 'eni-0bbbbbbbbbbbbbbb2',
  primaryPrivateIp: '10.0.0.12',
};

/**
 * A small model of the EC2 state this pattern touches, behind aws-sdk-client-mock, so the agent's
 * real SDK gateway runs. It follows EC2's documented rules: assignment with AllowReassignment moves
 * the IP, and an EIP associated with that IP moves with it.
 */
export class Ec2World {
  readonly mock = mockClient(EC2Client);
  /** Which ENI holds each private IP. */
  readonly ips = new Map<string, string>([
    [THIS_NODE.primaryPrivateIp, THIS_NODE.networkInterfaceId],
    [PEER.primaryPrivateIp, PEER.networkInterfaceId],
  ]);
  association: { eni: string; ip: string } | null = null;
  /** DescribeAddresses answers with the pre-associate view for this many more calls. */
  private staleReads = 0;
  private lagReads = 0;
  private staleView: { eni: string; ip: string } | null = null;
  /** Hooks run when a mutating call arrives, before it takes effect (to inject races). */
  onAssign: (() => void | Promise<void>) | undefined;
  onAssociate: (() => void | Promise<void>) | undefined;

  constructor() {
    this.mock.reset();
    this.mock.on(DescribeAddressesCommand).callsFake(() => {
      let view = this.association;
      if (this.staleReads > 0) {
        this.staleReads -= 1;
        view = this.staleView;
      }
      return {
        Addresses: [
          {
            AllocationId: ALLOCATION_ID,
            PublicIp: PUBLIC_IP,
            Domain: 'vpc',
            ...(view
              ? {
                  AssociationId: 'eipassoc-0123456789abcdef0',
                  NetworkInterfaceId: view.eni,
                  PrivateIpAddress: view.ip,
                  InstanceId:
                    view.eni === THIS_NODE.networkInterfaceId
                      ? THIS_NODE.instanceId
                      : PEER.instanceId,
                }
              : {}),
          },
        ],
      };
    });
    this.mock.on(DescribeNetworkInterfacesCommand).callsFake((input) => {
      const byIp = input.Filters?.find(
        (f: { Name: string }) => f.Name === 'addresses.private-ip-address',
      )?.Values?.[0];
      const enis =
        byIp !== undefined
          ? [this.ips.get(byIp)].filter((e) => e !== undefined)
          : (input.NetworkInterfaceIds ?? []);
      return {
        NetworkInterfaces: enis.map((eni: string) => ({
          NetworkInterfaceId: eni,
          AvailabilityZone: THIS_NODE.availabilityZone,
          SubnetId: THIS_NODE.subnetId,
          PrivateIpAddress:
            eni === THIS_NODE.networkInterfaceId
              ? THIS_NODE.primaryPrivateIp
              : PEER.primaryPrivateIp,
          PrivateIpAddresses: [...this.ips.entries()]
            .filter(([, holder]) => holder === eni)
            .map(([ip]) => ({
              PrivateIpAddress: ip,
              Primary: ip === THIS_NODE.primaryPrivateIp || ip === PEER.primaryPrivateIp,
            })),
        })),
      };
    });
    this.mock.on(AssignPrivateIpAddressesCommand).callsFake(async (input) => {
      await this.onAssign?.();
      const ip = input.PrivateIpAddresses?.[0] as string;
      this.ips.set(ip, input.NetworkInterfaceId as string);
      if (this.association?.ip === ip)
        this.association = { eni: input.NetworkInterfaceId as string, ip };
      return {};
    });
    this.mock.on(AssociateAddressCommand).callsFake(async (input) => {
      if (input.DryRun) throw ec2Error('DryRunOperation', 412);
      await this.onAssociate?.();
      this.staleView = this.association;
      this.staleReads = this.lagReads;
      this.association = {
        eni: input.NetworkInterfaceId as string,
        ip: input.PrivateIpAddress as string,
      };
      return { AssociationId: 'eipassoc-0123456789abcdef0' };
    });
  }

  /** The next DescribeAddresses calls after this keep showing the association from before the move. */
  lagAfterAssociate(reads: number): void {
    this.lagReads = reads;
  }

  mutatingCalls(): string[] {
    return this.mock
      .calls()
      .map((c) => c.args[0].constructor.name)
      .filter(
        (name) => name === 'AssignPrivateIpAddressesCommand' || name === 'AssociateAddressCommand',
      );
  }
}

export function ec2Error(
  name: string,
  status: number,
  message = `${name} (test)`,
): EC2ServiceException {
  return new EC2ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message,
  });
}

/** IMDS in memory; local-ipv4s follows the EC2 world, as on a real instance. */
export function fakeImds(world: Ec2World, node: StubNode = THIS_NODE): Imds & { calls: string[] } {
  const calls: string[] = [];
  const base = `network/interfaces/macs/${node.macAddress}`;
  const values: Record<string, string> = {
    'instance-id': node.instanceId,
    'placement/region': node.region,
    'placement/availability-zone': node.availabilityZone,
    mac: node.macAddress,
    [`${base}/interface-id`]: node.networkInterfaceId,
    [`${base}/vpc-id`]: node.vpcId,
    [`${base}/subnet-id`]: node.subnetId,
    [`${base}/subnet-ipv4-cidr-block`]: node.subnetCidr,
  };
  return {
    endpoint: 'memory://imds',
    calls,
    get: async (path: string) => {
      calls.push(path);
      if (path === `${base}/local-ipv4s`) {
        return [...world.ips.entries()]
          .filter(([, eni]) => eni === node.networkInterfaceId)
          .map(([ip]) => ip)
          .join('\n');
      }
      const value = values[path];
      if (value === undefined) throw new ImdsError(`no ${path}`, 404);
      return value;
    },
  };
}

/** Virtual time: sleeping advances it at once, so deadlines and backoff are exact and fast. */
export function virtualClock(
  start = Date.parse('2026-11-23T03:00:00Z'),
): Clock & { elapsed(): number } {
  let now = start;
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
    random: () => 0.5,
    elapsed: () => now - start,
  };
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly logs: Array<Record<string, unknown>>;
}

export class Sandbox {
  private constructor(readonly dir: string) {}
  static async create(): Promise<Sandbox> {
    return new Sandbox(await mkdtemp(join(tmpdir(), 'eip-failover-test-')));
  }
  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get configPath(): string {
    return join(this.dir, 'config.json');
  }
  async writeConfig(config: unknown): Promise<void> {
    await writeFile(this.configPath, typeof config === 'string' ? config : JSON.stringify(config));
  }
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function defaultConfig(
  sandbox: Sandbox,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    addresses: [{ allocationId: ALLOCATION_ID, privateIp: VIP }],
    region: 'eu-central-1',
    deadlineSeconds: 20,
    stateDir: sandbox.stateDir,
    ...overrides,
  };
}

/** Runs the CLI in-process, as keepalived would run the bundle, and captures everything it says. */
export async function runAgent(argv: string[], deps: Partial<RunDeps> = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const lines: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const code = await run(argv, {
    env: { AWS_ACCESS_KEY_ID: 'AKIDTESTONLY', AWS_SECRET_ACCESS_KEY: 'test-secret-only' },
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    logStream,
    ...deps,
  });
  return { code, stdout, stderr, logs: lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export interface AgentFixture {
  readonly world: Ec2World;
  readonly sandbox: Sandbox;
  readonly clock: ReturnType<typeof virtualClock>;
  /** Runs the agent with `-c` this sandbox's config, against this world's IMDS and this clock. */
  agent(args: readonly string[], deps?: Partial<RunDeps>): Promise<RunResult>;
}

/**
 * A fresh EC2 world, sandbox (with the default config written) and virtual clock for each test,
 * removed after it. Read the fields inside tests and hooks.
 */
export function useAgentFixture(): AgentFixture {
  let current:
    | { world: Ec2World; sandbox: Sandbox; clock: ReturnType<typeof virtualClock> }
    | undefined;
  beforeEach(async () => {
    const sandbox = await Sandbox.create();
    current = { world: new Ec2World(), sandbox, clock: virtualClock() };
    await sandbox.writeConfig(defaultConfig(sandbox));
  });
  afterEach(async () => {
    current?.world.mock.restore();
    await current?.sandbox.remove();
    current = undefined;
  });
  const get = () => {
    if (current === undefined) throw new Error('use the fixture inside tests and hooks');
    return current;
  };
  return {
    get world() {
      return get().world;
    },
    get sandbox() {
      return get().sandbox;
    },
    get clock() {
      return get().clock;
    },
    agent: (args, deps = {}) =>
      runAgent([...args, '-c', get().sandbox.configPath], {
        imds: fakeImds(get().world),
        clock: get().clock,
        ...deps,
      }),
  };
}
