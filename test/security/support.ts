import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Template } from 'aws-cdk-lib/assertions';
import { logicalId, synth } from '../cdk/support.js';
import type { PolicyDocument } from '../support/emulator.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from '../support/imds-stub.js';
import {
  eniLocalIpv4s,
  stubNodeOf,
  type World,
  type WorldMode,
  type WorldNode,
} from '../support/world.js';

export const BUNDLE = resolve(import.meta.dirname, '../../agent/dist/eip-failover.mjs');
/** moto's account, which the emulator's IAM layer builds resource ARNs with. */
export const EMULATOR_ACCOUNT = '123456789012';
export const REGION = 'eu-central-1';

/** What the IMDS stub serves under iam/security-credentials/ (test/support/imds-stub.ts). */
export const INSTANCE_PROFILE_CREDENTIALS = {
  accessKeyId: 'ASIATESTONLYSTUB0001',
  secretAccessKey: 'stub-secret-not-real',
  sessionToken: 'stub-session-token-not-real',
} as const;

/**
 * The identity policy the CDK app attaches to the pair's role, for `mode`, with every intrinsic
 * resolved against the emulator world: the EIP to the world's allocation, the CDK pair's ENIs and
 * instances (ordered by private IP: first node, second node) to the world's primary and
 * secondary. Any intrinsic or reference this does not know makes it throw, so the document under
 * test is exactly what `cdk synth` produces, not a copy.
 */
export function synthesizedPolicy(mode: WorldMode, world: World): PolicyDocument {
  const { template } = synth({ mode });
  const role = roleOfThePair(template);
  const json = template.toJSON() as {
    Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  };
  const attached = Object.values(json.Resources).filter(
    (r) =>
      (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') &&
      JSON.stringify(r.Properties?.Roles ?? []).includes(JSON.stringify({ Ref: role })),
  );
  if (attached.length !== 1)
    throw new Error(`expected one policy on the role, found ${attached.length}`);
  const managed = json.Resources[role]?.Properties?.ManagedPolicyArns;
  if (managed !== undefined && !JSON.stringify(managed).includes('AmazonSSMManagedInstanceCore'))
    throw new Error(`unexpected managed policies on the role: ${JSON.stringify(managed)}`);

  const refs = new Map<string, string>();
  const enis = Object.entries(json.Resources)
    .filter(([, r]) => r.Type === 'AWS::EC2::NetworkInterface')
    .sort(
      ([, a], [, b]) =>
        ipOrder(String(a.Properties?.PrivateIpAddress)) -
        ipOrder(String(b.Properties?.PrivateIpAddress)),
    );
  if (enis.length !== 2) throw new Error(`expected the pair's two ENIs, found ${enis.length}`);
  const nodes: WorldNode[] = [world.primary, world.secondary];
  enis.forEach(([eniId], index) => {
    const node = nodes[index] as WorldNode;
    refs.set(eniId, node.networkInterfaceId);
    for (const [instanceId, instance] of Object.entries(json.Resources)) {
      if (instance.Type !== 'AWS::EC2::Instance') continue;
      const primaryEni = (
        instance.Properties?.NetworkInterfaces as {
          DeviceIndex: string;
          NetworkInterfaceId: unknown;
        }[]
      )?.find((n) => String(n.DeviceIndex) === '0')?.NetworkInterfaceId;
      if (JSON.stringify(primaryEni) === JSON.stringify({ Ref: eniId }))
        refs.set(instanceId, node.instanceId);
    }
  });
  refs.set('AWS::Partition', 'aws');
  refs.set('AWS::Region', REGION);
  refs.set('AWS::AccountId', EMULATOR_ACCOUNT);
  const eip = logicalId(template, 'AWS::EC2::EIP');
  const getAtts = new Map([[`${eip}.AllocationId`, world.allocationId]]);

  const resolveValue = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolveValue);
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value);
    const [key, arg] = entries[0] ?? [];
    if (entries.length === 1 && key === 'Ref') {
      const found = refs.get(String(arg));
      if (found === undefined) throw new Error(`unresolved Ref ${String(arg)}`);
      return found;
    }
    if (entries.length === 1 && key === 'Fn::GetAtt') {
      const found = getAtts.get((arg as string[]).join('.'));
      if (found === undefined) throw new Error(`unresolved Fn::GetAtt ${JSON.stringify(arg)}`);
      return found;
    }
    if (entries.length === 1 && key === 'Fn::Join') {
      const [sep, parts] = arg as [string, unknown[]];
      return parts.map((p) => String(resolveValue(p))).join(sep);
    }
    if (entries.length === 1 && key?.startsWith('Fn::'))
      throw new Error(`unsupported intrinsic ${key}`);
    return Object.fromEntries(entries.map(([k, v]) => [k, resolveValue(v)]));
  };
  return resolveValue(attached[0]?.Properties?.PolicyDocument) as PolicyDocument;
}

function roleOfThePair(template: Template): string {
  const roles = Object.entries(template.findResources('AWS::IAM::Role')).filter(([, r]) =>
    String(r.Properties?.Description ?? '').includes('keepalived EIP pair nodes'),
  );
  if (roles.length !== 1) throw new Error(`expected the pair's role, found ${roles.length}`);
  return (roles[0] as [string, unknown])[0];
}

function ipOrder(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export interface AgentNode {
  readonly world: WorldNode;
  readonly imds: ImdsStub;
  readonly config: string;
  readonly stateDir: string;
}

/** An IMDSv2 stub for `node` (with the instance profile) and a config file for the agent. */
export async function agentNode(
  ec2: EC2Client,
  world: World,
  node: WorldNode,
  dir: string,
  config: { allocationId?: string; logFile?: string } = {},
): Promise<AgentNode> {
  const imds = await startImdsStub({
    metadata: instanceMetadata(
      stubNodeOf(world, node, { region: REGION, role: 'pair-node-role' }),
      () => eniLocalIpv4s(ec2, node.networkInterfaceId),
    ),
  });
  const stateDir = join(dir, `${node.instanceId}-${Date.now()}`);
  const configFile = `${stateDir}.json`;
  await writeFile(
    configFile,
    JSON.stringify({
      addresses: [
        {
          allocationId: config.allocationId ?? world.allocationId,
          ...(world.vip ? { privateIp: world.vip } : {}),
        },
      ],
      deadlineSeconds: 20,
      stateDir,
      ...(config.logFile ? { logFile: config.logFile } : {}),
    }),
  );
  return { world: node, imds, config: configFile, stateDir };
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the built bundle as keepalived would, against the emulator and the node's IMDS stub.
 * `credentials` undefined: none in the environment, so the agent takes the instance profile's.
 */
export function runAgent(
  endpoint: string,
  node: AgentNode,
  args: string[],
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined,
  extraEnv: Record<string, string> = {},
  options: { umask?: string; uid?: number; gid?: number } = {},
): Promise<Run> {
  const argv = [BUNDLE, ...args, '-c', node.config];
  // With a umask: through sh, which sets it and execs node with the same arguments.
  const [file, fileArgs] =
    options.umask === undefined
      ? [process.execPath, argv]
      : ['/bin/sh', ['-c', `umask ${options.umask} && exec "$0" "$@"`, process.execPath, ...argv]];
  return new Promise((done) => {
    execFile(
      file,
      fileArgs,
      {
        env: {
          PATH: process.env.PATH ?? '',
          AWS_ENDPOINT_URL_EC2: endpoint,
          AWS_EC2_METADATA_SERVICE_ENDPOINT: node.imds.endpoint,
          AWS_ACCESS_KEY_ID: credentials?.accessKeyId ?? '',
          AWS_SECRET_ACCESS_KEY: credentials?.secretAccessKey ?? '',
          AWS_REGION: REGION,
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
          NODE_NO_WARNINGS: '1',
          ...extraEnv,
        },
        timeout: 60_000,
        ...(options.uid === undefined ? {} : { uid: options.uid }),
        ...(options.gid === undefined ? {} : { gid: options.gid }),
      },
      (err, stdout, stderr) =>
        done({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}
