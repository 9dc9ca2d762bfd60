import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { isAbsolute } from 'node:path';
import { ConfigError, oneLine, quote } from './errors.js';
import { RETRY_MODES, type RetryMode } from './retry-strategy.js';

export const DEFAULT_CONFIG_PATH = '/etc/eip-failover/config.json';
export const DEFAULT_STATE_DIR = '/run/eip-failover';
export const DEFAULT_DEADLINE_SECONDS = 60;
/** Chosen from the fleet simulation's figures (bench/FLEET.md). */
export const DEFAULT_RETRY_MODE: RetryMode = 'standard';
const MAX_CONFIG_BYTES = 64 * 1024;

export interface AddressConfig {
  readonly allocationId: string;
  /** Absent: cross-AZ mode, the EIP follows this node's primary private IP. */
  readonly privateIp?: string;
}

export interface AgentConfig {
  readonly configPath: string | undefined;
  readonly addresses: readonly AddressConfig[];
  readonly interface?: string;
  readonly region?: string;
  readonly stateDir: string;
  readonly logFile?: string;
  readonly deadlineSeconds: number;
  readonly dryRun: boolean;
  /**
   * Whether a periodic reconcile on this MASTER takes back an address the other node moved after
   * this node's own verified takeover. The higher-priority node: true; the lower: false, so that
   * in a VRRP partition (both MASTER) the two never pull the address back and forth.
   */
  readonly reclaimFromPeer: boolean;
  /** The AWS SDKs' retry mode for EC2 calls: standard, or adaptive (client-side rate limiting). */
  readonly retryMode: RetryMode;
}

/** What the command line says; every field optional, flags win over everything. */
export interface ConfigFlags {
  readonly config?: string;
  readonly allocationId?: string;
  readonly privateIp?: string;
  readonly interface?: string;
  readonly region?: string;
  readonly stateDir?: string;
  readonly logFile?: string;
  readonly deadline?: string;
  readonly dryRun?: boolean;
}

/** The config file's keys (DESIGN.md); anything else is an error. */
export const CONFIG_KEYS: ReadonlySet<string> = new Set([
  'addresses',
  'interface',
  'region',
  'deadlineSeconds',
  'stateDir',
  'logFile',
  'reclaimFromPeer',
  'retryMode',
]);
const ADDRESS_KEYS = new Set(['allocationId', 'privateIp']);
const ALLOCATION_ID = /^eipalloc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
/** An AWS region name such as eu-central-1; IMDS's placement/region is checked against it too. */
export const REGION_NAME = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const INTERFACE = /^[A-Za-z0-9_.:-]{1,15}$/;

/**
 * Resolves the configuration: flags override the environment, which overrides the file.
 * Throws ConfigError with one line naming the problem and the fix; never touches the network.
 */
export function loadConfig(
  flags: ConfigFlags,
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string = readConfigFile,
): AgentConfig {
  const explicitPath = flags.config ?? env.EIP_FAILOVER_CONFIG;
  const configPath = explicitPath ?? DEFAULT_CONFIG_PATH;
  const where = `in ${configPath}`;

  let file: Record<string, unknown> = {};
  let fileRead = false;
  try {
    file = parseConfigText(readFile(configPath), configPath);
    fileRead = true;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    // The default path may be absent when everything needed comes from flags.
    if (!(missing && explicitPath === undefined && flags.allocationId !== undefined)) {
      if (missing) {
        throw new ConfigError(
          `config file ${configPath} does not exist; create it (see README, "Agent configuration") or pass --config PATH or --allocation-id ID`,
        );
      }
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(
        `cannot read config file ${configPath}: ${(err as Error).message}; check the path and that the file is readable by this user`,
      );
    }
  }

  for (const key of Object.keys(file)) {
    if (!CONFIG_KEYS.has(key)) {
      throw new ConfigError(
        `unknown key ${quote(key)} ${where}; allowed keys are ${[...CONFIG_KEYS].join(', ')} (check the spelling)`,
      );
    }
  }

  let addresses =
    fileRead && file.addresses !== undefined ? parseAddresses(file.addresses, where) : [];
  if (flags.allocationId !== undefined) {
    addresses = [
      checkAddress(
        { allocationId: flags.allocationId, privateIp: flags.privateIp },
        '--allocation-id/--private-ip',
      ),
    ];
  } else if (flags.privateIp !== undefined) {
    const only = addresses[0];
    if (addresses.length !== 1 || only === undefined) {
      throw new ConfigError(
        `--private-ip needs exactly one address to apply to, but ${addresses.length} are configured; pass --allocation-id too`,
      );
    }
    addresses = [
      checkAddress({ allocationId: only.allocationId, privateIp: flags.privateIp }, '--private-ip'),
    ];
  }
  if (addresses.length === 0) {
    throw new ConfigError(
      `no address configured; add "addresses": [{"allocationId": "eipalloc-…", "privateIp": "10.0.0.50"}] ${where} or pass --allocation-id`,
    );
  }

  const iface = flags.interface ?? optionalString(file.interface, 'interface', where);
  if (iface !== undefined && !INTERFACE.test(iface)) {
    throw new ConfigError(
      `interface ${quote(iface)} is not a network interface name; use the OS name such as eth0 or ens5, or leave it out to use the ENI at device index 0`,
    );
  }
  const region = flags.region ?? env.AWS_REGION ?? optionalString(file.region, 'region', where);
  if (region !== undefined && !REGION_NAME.test(region)) {
    throw new ConfigError(
      `region ${quote(region)} is not an AWS region name such as eu-central-1; fix --region, AWS_REGION or "region" ${where}, or leave it out to read it from IMDS`,
    );
  }
  const stateDir = absolutePath(
    flags.stateDir ?? optionalString(file.stateDir, 'stateDir', where) ?? DEFAULT_STATE_DIR,
    'stateDir',
  );
  const logFileRaw = flags.logFile ?? optionalString(file.logFile, 'logFile', where);
  const logFile = logFileRaw === undefined ? undefined : absolutePath(logFileRaw, 'logFile');
  const deadlineSeconds =
    flags.deadline !== undefined
      ? parseDeadline(
          /^\d+$/.test(flags.deadline) ? Number(flags.deadline) : flags.deadline,
          '--deadline',
        )
      : parseDeadline(
          file.deadlineSeconds ?? DEFAULT_DEADLINE_SECONDS,
          `"deadlineSeconds" ${where}`,
        );

  return {
    configPath: fileRead ? configPath : undefined,
    addresses,
    ...(iface === undefined ? {} : { interface: iface }),
    ...(region === undefined ? {} : { region }),
    stateDir,
    ...(logFile === undefined ? {} : { logFile }),
    deadlineSeconds,
    dryRun: flags.dryRun ?? false,
    reclaimFromPeer: parseBoolean(file.reclaimFromPeer, 'reclaimFromPeer', where) ?? true,
    retryMode: parseRetryMode(file.retryMode, where),
  };
}

function readConfigFile(path: string): string {
  // Non-blocking open: a FIFO must not wait for a writer. Only a regular file is read, and never
  // more than the cap: /dev/zero or a multi-GiB file would otherwise be read until memory runs out.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (info.isDirectory()) {
      throw new ConfigError(`config file ${path} is a directory; pass the path of the JSON file`);
    }
    if (!info.isFile()) {
      throw new ConfigError(
        `config file ${path} is not a regular file; pass the path of the JSON file the Ansible role renders`,
      );
    }
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) {
      n = readSync(fd, buffer, length, buffer.length - length, null);
    }
    if (info.size > MAX_CONFIG_BYTES || length > MAX_CONFIG_BYTES) throw tooLarge(path);
    try {
      // ignoreBOM keeps a BOM in the text, which JSON.parse refuses as before.
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(
        buffer.subarray(0, length),
      );
    } catch {
      throw new ConfigError(
        `config file ${path} is not UTF-8 text; save it as UTF-8 (a path or key read with replacement characters would not be the one written)`,
      );
    }
  } finally {
    closeSync(fd);
  }
}

function tooLarge(path: string): ConfigError {
  return new ConfigError(
    `config file ${path} is larger than ${MAX_CONFIG_BYTES / 1024} KiB; it should hold a few lines of JSON — check that the path points at the agent's config`,
  );
}

function parseConfigText(text: string, path: string): Record<string, unknown> {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw tooLarge(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      `config file ${path} is not valid JSON (${oneLine((err as Error).message)}); fix the syntax, e.g. re-render it with the Ansible role`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(
      `config file ${path} must hold a JSON object such as {"addresses": [...]}`,
    );
  }
  return parsed as Record<string, unknown>;
}

function parseAddresses(value: unknown, where: string): AddressConfig[] {
  if (!Array.isArray(value)) {
    throw new ConfigError(
      `"addresses" ${where} must be a list of {"allocationId", "privateIp"} objects`,
    );
  }
  const seenAllocations = new Set<string>();
  const seenIps = new Set<string>();
  return value.map((entry: unknown, i) => {
    const label = `addresses[${i}] ${where}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new ConfigError(
        `${label} must be an object like {"allocationId": "eipalloc-…", "privateIp": "10.0.0.50"}`,
      );
    }
    const record = entry as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!ADDRESS_KEYS.has(key)) {
        throw new ConfigError(
          `unknown key ${quote(key)} in ${label}; allowed keys are allocationId, privateIp`,
        );
      }
    }
    const address = checkAddress(
      {
        allocationId: record.allocationId,
        privateIp: record.privateIp,
      },
      label,
    );
    if (seenAllocations.has(address.allocationId)) {
      throw new ConfigError(
        `${label} repeats allocation ${address.allocationId}; list each Elastic IP once`,
      );
    }
    seenAllocations.add(address.allocationId);
    if (address.privateIp !== undefined) {
      if (seenIps.has(address.privateIp)) {
        throw new ConfigError(
          `${label} repeats private IP ${address.privateIp}; each Elastic IP needs its own private IP`,
        );
      }
      seenIps.add(address.privateIp);
    }
    return address;
  });
}

function checkAddress(
  raw: { allocationId: unknown; privateIp: unknown },
  label: string,
): AddressConfig {
  const { allocationId, privateIp } = raw;
  if (typeof allocationId !== 'string' || !ALLOCATION_ID.test(allocationId)) {
    throw new ConfigError(
      `${label}: allocation id ${quote(allocationId ?? null)} is not an Elastic IP allocation id (eipalloc- followed by 8 or 17 hex digits); copy AllocationId from the CDK outputs`,
    );
  }
  if (privateIp === undefined || privateIp === null) return { allocationId };
  if (typeof privateIp !== 'string' || !isIPv4(privateIp)) {
    throw new ConfigError(
      `${label}: private IP ${quote(privateIp)} is not an IPv4 address; use the VIP from the CDK outputs, or leave it out for cross-az mode`,
    );
  }
  return { allocationId, privateIp };
}

function optionalString(value: unknown, key: string, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError(`"${key}" ${where} must be a non-empty string`);
  }
  return value;
}

function absolutePath(path: string, key: string): string {
  if (!isAbsolute(path)) {
    throw new ConfigError(
      `${key} ${quote(path)} must be an absolute path: keepalived runs the agent from /, so relative paths would land in the wrong place`,
    );
  }
  return path;
}

function parseDeadline(seconds: unknown, where: string): number {
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 5 || seconds > 3600) {
    throw new ConfigError(
      `deadline ${quote(seconds)} from ${where} must be a whole number of seconds from 5 to 3600 (default ${DEFAULT_DEADLINE_SECONDS})`,
    );
  }
  return seconds;
}

function parseBoolean(value: unknown, key: string, where: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') {
    throw new ConfigError(`"${key}" ${where} must be true or false, not ${quote(value)}`);
  }
  return value;
}

function parseRetryMode(value: unknown, where: string): RetryMode {
  if (value === undefined || value === null) return DEFAULT_RETRY_MODE;
  if (!RETRY_MODES.includes(value as RetryMode)) {
    throw new ConfigError(
      `"retryMode" ${where} must be ${RETRY_MODES.map((m) => `"${m}"`).join(' or ')}, not ${JSON.stringify(value)} (default "${DEFAULT_RETRY_MODE}")`,
    );
  }
  return value as RetryMode;
}
