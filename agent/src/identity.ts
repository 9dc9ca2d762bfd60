import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { REGION_NAME } from './config.js';
import { ConfigError, ImdsError } from './errors.js';
import type { Imds } from './imds.js';

/** Who this node is, as IMDS says. */
export interface NodeIdentity {
  readonly instanceId: string;
  readonly region: string;
  readonly availabilityZone: string;
  readonly macAddress: string;
  readonly networkInterfaceId: string;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly subnetCidr: string;
}

export interface IdentityOptions {
  /** OS interface name; absent → the ENI with device number 0 (IMDS `mac`). */
  readonly interface?: string;
  /** Region from flags/env/config; absent → IMDS placement/region. */
  readonly region?: string;
  /** Where the OS lists interfaces; tests and namespaces may point elsewhere. */
  readonly sysClassNet?: string;
}

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Learns this node's identity in one round of parallel IMDS reads on one token. */
export async function discoverIdentity(
  imds: Imds,
  options: IdentityOptions,
): Promise<NodeIdentity> {
  // The OS side first: an interface that does not exist is a configuration error, found offline.
  const osMac = options.interface === undefined ? undefined : await readInterfaceMac(options);
  const [instanceId, region, availabilityZone, macAddress] = await Promise.all([
    imds.get('instance-id').then((v) => expect(v, 'instance-id', /^i-[0-9a-f]{8,17}$/)),
    options.region === undefined
      ? imds.get('placement/region').then((v) => expect(v, 'placement/region', REGION_NAME))
      : Promise.resolve(options.region),
    imds
      .get('placement/availability-zone')
      .then((v) => expect(v, 'placement/availability-zone', /^[a-z0-9-]{4,32}$/)),
    osMac === undefined
      ? imds.get('mac').then((v) => expect(v, 'mac', MAC))
      : Promise.resolve(osMac),
  ]);
  const base = `network/interfaces/macs/${macAddress}`;
  let networkInterfaceId: string;
  try {
    networkInterfaceId = expect(
      await imds.get(`${base}/interface-id`),
      'interface-id',
      /^eni-[0-9a-f]{8,17}$/,
    );
  } catch (err) {
    if (err instanceof ImdsError && err.status === 404 && options.interface !== undefined) {
      throw new ConfigError(
        `interface ${options.interface} (MAC ${macAddress}) is not an ENI of this instance in IMDS; set "interface" to the OS name of an attached ENI or leave it out for device index 0`,
      );
    }
    throw err;
  }
  const [vpcId, subnetId, subnetCidr] = await Promise.all([
    imds.get(`${base}/vpc-id`).then((v) => expect(v, 'vpc-id', /^vpc-[0-9a-f]{8,17}$/)),
    imds.get(`${base}/subnet-id`).then((v) => expect(v, 'subnet-id', /^subnet-[0-9a-f]{8,17}$/)),
    imds.get(`${base}/subnet-ipv4-cidr-block`).then((v) => expectCidr(v)),
  ]);
  return {
    instanceId,
    region,
    availabilityZone,
    macAddress,
    networkInterfaceId,
    vpcId,
    subnetId,
    subnetCidr,
  };
}

/** The private IPv4 addresses IMDS lists on this node's ENI, parsed line by line. */
export async function localIpv4s(imds: Imds, macAddress: string): Promise<string[]> {
  const body = await imds.get(`network/interfaces/macs/${macAddress}/local-ipv4s`);
  return body
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      if (!isIPv4(line))
        throw new ImdsError(
          `IMDS local-ipv4s holds a line that is not an IPv4 address: ${JSON.stringify(line.slice(0, 64))}`,
        );
      return line;
    });
}

async function readInterfaceMac(options: IdentityOptions): Promise<string> {
  const root = options.sysClassNet ?? '/sys/class/net';
  const name = options.interface as string;
  let text: string;
  try {
    text = await readFile(`${root}/${name}/address`, 'utf8');
  } catch {
    throw new ConfigError(
      `interface ${name} does not exist on this host (no ${root}/${name}); set "interface" to one listed by \`ip link\`, or leave it out to use the ENI at device index 0`,
    );
  }
  const mac = text.trim().toLowerCase();
  if (!MAC.test(mac))
    throw new ConfigError(
      `interface ${name} has no Ethernet MAC address (${root}/${name}/address)`,
    );
  return mac;
}

function expect(value: string, what: string, pattern: RegExp): string {
  const trimmed = value.trim();
  if (!pattern.test(trimmed)) {
    throw new ImdsError(
      `IMDS returned an unexpected ${what}: ${JSON.stringify(trimmed.slice(0, 64))}`,
    );
  }
  return trimmed;
}

function expectCidr(value: string): string {
  const trimmed = value.trim();
  const parts = trimmed.split('/');
  const [ip, bits] = parts;
  if (
    parts.length !== 2 ||
    ip === undefined ||
    !isIPv4(ip) ||
    bits === undefined ||
    !/^\d{1,2}$/.test(bits) ||
    Number(bits) > 32
  ) {
    throw new ImdsError(
      `IMDS returned an unexpected subnet-ipv4-cidr-block: ${JSON.stringify(trimmed.slice(0, 64))}`,
    );
  }
  return trimmed;
}

/** True when ip lies inside cidr (IPv4), compared numerically, never as strings. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (base === undefined || !isIPv4(base) || !isIPv4(ip)) return false;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (ipToInt(base) & mask) >>> 0 === (ipToInt(ip) & mask) >>> 0;
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}
