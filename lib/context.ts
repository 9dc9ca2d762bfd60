import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { FAILOVER_MODES, type FailoverMode } from './addressing';
import type { ExistingVpc, KeepalivedEipPairStackProps } from './stack';

/**
 * Every context key the app reads (`-c key=value` or cdk.json "context"), with its meaning. The
 * README's table is written from this list; unknown keys are rejected so typos do not pass silently.
 */
export const CONTEXT_KEYS = {
  stackId: 'stack id, the top-level key of the outputs file (default KeepalivedEipPair)',
  mode: 'same-subnet (default) or cross-az',
  vip: 'the floating secondary private IP, same-subnet only (default: reserved block + 14)',
  addressBlockOffset: "offset of the pair's reserved /28 in each subnet (default 16)",
  instanceType: 'instance type (default t3.small)',
  amiId: 'pin the AMI (default: latest Amazon Linux 2023 from the public SSM parameter)',
  rootVolumeGiB: "root volume size in GiB (default: the AMI's)",
  existingAllocationId: 'import this Elastic IP instead of creating one (with existingPublicIp)',
  existingPublicIp: 'the public address of existingAllocationId',
  existingVpc:
    'JSON {vpcId, vpcCidr, subnets: [{subnetId, cidr, availabilityZone}]} (default: new VPC)',
  vpcCidr: 'CIDR of the new VPC (default 10.0.0.0/16)',
  servicePorts: 'comma-separated TCP ports served (default 80,443)',
  serviceCidrs: 'comma-separated CIDRs allowed to the service ports (default 0.0.0.0/0)',
  backendPorts: 'comma-separated backend TCP ports (default 80,443)',
  backendCidrs: "comma-separated backend CIDRs (default: the VPC's CIDR)",
  adminCidr: 'CIDR allowed to SSH; never /0 (default: none, use SSM)',
  keyName: 'EC2 key pair for SSH (default: none)',
  ssm: 'SSM Session Manager access: true (default) or false',
  apiEndpoints: 'VPC interface endpoints for EC2 (and SSM): true (default) or false',
  detailedMonitoring: 'one-minute CloudWatch metrics: false (default) or true',
  nodeTerminationProtection: 'DisableApiTermination on the nodes: false (default) or true',
} as const;

export type ContextKey = keyof typeof CONTEXT_KEYS;

/** Reads a context value; undefined when absent. */
export type ContextReader = (key: string) => unknown;

export interface AppConfig {
  readonly stackId: string;
  readonly props: KeepalivedEipPairStackProps;
}

/**
 * Turns context values (strings from `-c`, or JSON values from cdk.json) into typed stack props.
 * Throws with the fix on a malformed value.
 */
export function configFromContext(
  read: ContextReader,
  presentKeys: readonly string[] = [],
): AppConfig {
  // CDK's own keys carry ':', '/' or '-' (feature flags, lookups); a bare word is meant for this app.
  const unknown = presentKeys.filter((key) => /^[A-Za-z]\w*$/.test(key) && !(key in CONTEXT_KEYS));
  if (unknown.length > 0) {
    throw new Error(
      `Unknown context key(s): ${unknown.join(', ')}. Known keys: ${Object.keys(CONTEXT_KEYS).join(', ')}.`,
    );
  }
  const str = (key: ContextKey): string | undefined => {
    const value = read(key);
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value === 'string') return value.trim();
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw new Error(
      `Context key ${key} must be a string, number or boolean; got ${JSON.stringify(value)}.`,
    );
  };
  const bool = (key: ContextKey): boolean | undefined => {
    const value = str(key);
    if (value === undefined) return undefined;
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw new Error(`Context key ${key} must be true or false; got '${value}'.`);
  };
  const int = (key: ContextKey): number | undefined => {
    const value = str(key);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value))
      throw new Error(`Context key ${key} must be a whole number; got '${value}'.`);
    return Number(value);
  };
  const list = (key: ContextKey): string[] | undefined => {
    const value = read(key);
    if (Array.isArray(value)) return value.map(String);
    const text = str(key);
    return text === undefined
      ? undefined
      : text
          .split(',')
          .map((item) => item.trim())
          .filter(Boolean);
  };
  const ports = (key: ContextKey): number[] | undefined =>
    list(key)?.map((item) => {
      if (!/^\d+$/.test(item))
        throw new Error(`Context key ${key}: '${item}' is not a port number.`);
      return Number(item);
    });

  const modeText = str('mode');
  if (modeText !== undefined && !(FAILOVER_MODES as readonly string[]).includes(modeText)) {
    throw new Error(
      `Context key mode must be one of ${FAILOVER_MODES.join(', ')}; got '${modeText}'.`,
    );
  }
  const mode = modeText as FailoverMode | undefined;
  const instanceTypeText = str('instanceType');
  const amiId = str('amiId');
  if (amiId !== undefined && !/^ami-[0-9a-f]{8,17}$/.test(amiId)) {
    throw new Error(`Context key amiId '${amiId}' is not an AMI id such as ami-0123456789abcdef0.`);
  }

  const props: KeepalivedEipPairStackProps = {
    description: 'keepalived + Elastic IP failover pair (keepalived-eip-failover)',
    mode,
    vip: str('vip'),
    addressBlockOffset: int('addressBlockOffset'),
    ...(instanceTypeText !== undefined
      ? { instanceType: new ec2.InstanceType(instanceTypeText) }
      : {}),
    ...(amiId !== undefined ? { machineImage: pinnedImage(amiId) } : {}),
    rootVolumeGiB: int('rootVolumeGiB'),
    existingAllocationId: str('existingAllocationId'),
    existingPublicIp: str('existingPublicIp'),
    existingVpc: existingVpc(read('existingVpc')),
    vpcCidr: str('vpcCidr'),
    servicePorts: ports('servicePorts'),
    serviceCidrs: list('serviceCidrs'),
    backendPorts: ports('backendPorts'),
    backendCidrs: list('backendCidrs'),
    adminCidr: str('adminCidr'),
    keyName: str('keyName'),
    ssm: bool('ssm'),
    apiEndpoints: bool('apiEndpoints'),
    detailedMonitoring: bool('detailedMonitoring'),
    nodeTerminationProtection: bool('nodeTerminationProtection'),
  };
  return { stackId: str('stackId') ?? 'KeepalivedEipPair', props };
}

/** An AMI id that works in whichever region the stack is deployed to. */
function pinnedImage(imageId: string): ec2.IMachineImage {
  return {
    getImage: () => ({
      imageId,
      osType: ec2.OperatingSystemType.LINUX,
      userData: ec2.UserData.forLinux(),
    }),
  };
}

function existingVpc(value: unknown): ExistingVpc | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new Error(
        'Context key existingVpc must be JSON such as {"vpcId":"vpc-...","vpcCidr":"10.1.0.0/16",' +
          '"subnets":[{"subnetId":"subnet-...","cidr":"10.1.0.0/24","availabilityZone":"eu-central-1a"}]}.',
      );
    }
  }
  const fail = (what: string): never => {
    throw new Error(`Context key existingVpc: ${what} (see README, "Deploying the pair (CDK)").`);
  };
  if (typeof parsed !== 'object' || parsed === null) return fail('expected a JSON object');
  const record = parsed as Record<string, unknown>;
  const text = (obj: Record<string, unknown>, key: string, pattern: RegExp): string => {
    const v = obj[key];
    if (typeof v !== 'string' || !pattern.test(v))
      return fail(`${key} is missing or malformed (got ${JSON.stringify(v)})`);
    return v;
  };
  const subnetsValue = record.subnets;
  if (!Array.isArray(subnetsValue) || subnetsValue.length === 0)
    return fail('subnets must be a non-empty array');
  return {
    vpcId: text(record, 'vpcId', /^vpc-[0-9a-f]+$/),
    vpcCidr: text(record, 'vpcCidr', /^[\d.]+\/\d+$/),
    subnets: subnetsValue.map((item: unknown) => {
      if (typeof item !== 'object' || item === null) return fail('each subnet must be an object');
      const subnet = item as Record<string, unknown>;
      const routeTableId = subnet.routeTableId;
      return {
        subnetId: text(subnet, 'subnetId', /^subnet-[0-9a-f]+$/),
        cidr: text(subnet, 'cidr', /^[\d.]+\/\d+$/),
        availabilityZone: text(subnet, 'availabilityZone', /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/),
        routeTableId: typeof routeTableId === 'string' ? routeTableId : undefined,
      };
    }),
  };
}
