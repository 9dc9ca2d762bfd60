import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeIdentity } from '../../agent/src/identity.js';

/** What an IMDS stub serves: the identity the agent learns, for one instance with one ENI. */
export interface StubNode extends NodeIdentity {
  readonly primaryPrivateIp: string;
  /** Instance profile role; absent → no instance profile (404 under iam/). */
  readonly role?: string;
}

export type Metadata = (path: string) => string | undefined | Promise<string | undefined>;

/**
 * The metadata tree of an instance, as IMDS serves it. localIpv4s is asked on every request so a
 * caller can reflect the emulator's current assignment.
 */
export function instanceMetadata(
  node: StubNode,
  localIpv4s: () => string[] | Promise<string[]>,
): Metadata {
  const mac = node.macAddress;
  const fixed: Record<string, string> = {
    'instance-id': node.instanceId,
    'placement/region': node.region,
    'placement/availability-zone': node.availabilityZone,
    mac,
    'local-ipv4': node.primaryPrivateIp,
    'network/interfaces/macs/': `${mac}/`,
    [`network/interfaces/macs/${mac}/interface-id`]: node.networkInterfaceId,
    [`network/interfaces/macs/${mac}/device-number`]: '0',
    [`network/interfaces/macs/${mac}/vpc-id`]: node.vpcId,
    [`network/interfaces/macs/${mac}/subnet-id`]: node.subnetId,
    [`network/interfaces/macs/${mac}/subnet-ipv4-cidr-block`]: node.subnetCidr,
  };
  if (node.role !== undefined) {
    fixed['iam/security-credentials/'] = node.role;
    fixed[`iam/security-credentials/${node.role}`] = JSON.stringify({
      Code: 'Success',
      Type: 'AWS-HMAC',
      AccessKeyId: 'ASIATESTONLYSTUB0001',
      SecretAccessKey: 'stub-secret-not-real',
      Token: 'stub-session-token-not-real',
      Expiration: new Date(Date.now() + 6 * 3_600_000).toISOString(),
      LastUpdated: new Date().toISOString(),
    });
  }
  return async (path) => {
    if (path === `network/interfaces/macs/${mac}/local-ipv4s`)
      return (await localIpv4s()).join('\n');
    return fixed[path];
  };
}

export interface StubRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** When the request arrived, in epoch milliseconds with sub-millisecond precision. */
  readonly receivedAt: number;
}

/** Faults a test can switch on: every request answers this way until cleared. */
export type StubFault =
  | { kind: 'status'; status: number; count?: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'body'; body: string; path?: string }
  /** The token expires mid-run: after this many more answered GETs, every token handed out is invalid. */
  | { kind: 'expire'; afterGets: number }
  | { kind: 'hang'; path?: string };

export interface ImdsStub {
  readonly endpoint: string;
  readonly requests: StubRequest[];
  /** Every session token handed out, also those since expired (to assert none is ever logged). */
  readonly issuedTokens: string[];
  /** Invalidates every token handed out so far: the next GET with one answers 401. */
  expireTokens(): void;
  setFault(fault: StubFault | undefined): void;
  close(): Promise<void>;
}

/**
 * An IMDSv2 stub: PUT /latest/api/token hands out tokens; GETs without a valid token answer 401,
 * as IMDS does when IMDSv2 is required (HttpTokens=required). No IMDSv1.
 */
export async function startImdsStub(options: {
  metadata: Metadata;
  host?: string;
  port?: number;
}): Promise<ImdsStub> {
  const tokens = new Set<string>();
  const issuedTokens: string[] = [];
  const requests: StubRequest[] = [];
  let fault: StubFault | undefined;

  const arrivals = new WeakMap<IncomingMessage, number>();
  const answer = (req: IncomingMessage, res: ServerResponse, status: number, body = ''): void => {
    const receivedAt = arrivals.get(req) ?? performance.timeOrigin + performance.now();
    requests.push({ method: req.method ?? '', path: req.url ?? '', status, receivedAt });
    res.writeHead(status, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };

  const server = createServer(async (req, res) => {
    arrivals.set(req, performance.timeOrigin + performance.now());
    const url = req.url ?? '/';
    if (fault?.kind === 'hang' && (fault.path === undefined || url.includes(fault.path))) {
      // Never answers: the client's timeout must fire. Listed with status 0 so tests see it came.
      requests.push({
        method: req.method ?? '',
        path: url,
        status: 0,
        receivedAt: arrivals.get(req) ?? 0,
      });
      return;
    }
    if (fault?.kind === 'delay')
      await new Promise((r) => setTimeout(r, fault?.kind === 'delay' ? fault.ms : 0));
    if (fault?.kind === 'status') {
      const current = fault;
      if (current.count !== undefined) {
        current.count -= 1;
        if (current.count <= 0) fault = undefined;
      }
      return answer(req, res, current.status, 'fault injected');
    }
    if (req.method === 'PUT' && url === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return answer(req, res, 400);
      const token = randomBytes(24).toString('base64url');
      tokens.add(token);
      issuedTokens.push(token);
      return answer(req, res, 200, token);
    }
    if (req.method !== 'GET' || !url.startsWith('/latest/meta-data/')) return answer(req, res, 404);
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (typeof token !== 'string' || !tokens.has(token)) return answer(req, res, 401);
    if (fault?.kind === 'body' && (fault.path === undefined || url.includes(fault.path)))
      return answer(req, res, 200, fault.body);
    if (fault?.kind === 'expire') {
      fault.afterGets -= 1;
      if (fault.afterGets <= 0) {
        tokens.clear();
        fault = undefined;
      }
    }
    const value = await options.metadata(url.slice('/latest/meta-data/'.length));
    if (value === undefined) return answer(req, res, 404, 'Not Found');
    return answer(req, res, 200, value);
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const { address, port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${address}:${port}`,
    requests,
    issuedTokens,
    expireTokens: () => tokens.clear(),
    setFault: (next) => {
      fault = next === undefined ? undefined : { ...next };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
