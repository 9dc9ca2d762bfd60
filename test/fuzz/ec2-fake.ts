import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A loopback stand-in for EC2's Query API (AWS_ENDPOINT_URL_EC2), for fuzzing only: a small model
 * of the pair (which ENI holds each private IP, where the EIP points) answering the four actions
 * the agent sends with the XML EC2 documents, and a script that corrupts chosen responses. Every
 * request is recorded, with whether the answer it got was one the agent could not have parsed.
 */

export const EC2_ACTIONS = [
  'DescribeAddresses',
  'DescribeNetworkInterfaces',
  'AssignPrivateIpAddresses',
  'AssociateAddress',
] as const;
export type Ec2Action = (typeof EC2_ACTIONS)[number];

/** What one corrupted answer looks like. */
export type Ec2Corruption =
  /** Cut the document at `at` (a fraction of its length), then close cleanly. */
  | { kind: 'truncate'; at: number }
  | { kind: 'empty' }
  /** Same content under another root element name (the SDK does not check the root). */
  | { kind: 'wrongRoot'; root: string }
  /** A well-formed document with none of the action's content, e.g. a proxy's HTML page. */
  | { kind: 'foreignDocument'; body: string }
  | { kind: 'notXml'; body: string }
  /** Remove every element with this tag. */
  | { kind: 'dropField'; field: string }
  /** Repeat the first element with this tag (an `item` or a scalar). */
  | { kind: 'duplicate'; field: string }
  /** Replace the text of every element with this tag. */
  | { kind: 'wrongType'; field: string; value: string }
  /** Unknown elements EC2 might add one day. */
  | { kind: 'extraElements'; count: number }
  /** A large unknown element before the content. */
  | { kind: 'huge'; bytes: number }
  /** An HTTP error status with this body (an EC2 error document, or anything). */
  | { kind: 'status'; status: number; body: string }
  /** Drop the connection before any byte of the response. */
  | { kind: 'reset' }
  /** Send the headers (with the full length) and part of the body, then drop the connection. */
  | { kind: 'resetMidBody'; at: number }
  /** Answer correctly after this many real milliseconds. */
  | { kind: 'delay'; ms: number }
  /** Never answer (the client's timeout must end it). */
  | { kind: 'hang' };

export interface Ec2Fault {
  /** `AssociateAddress:DryRun` addresses the dry-run calls alone. */
  readonly action: Ec2Action | 'AssociateAddress:DryRun';
  /** Which call of that action (1-based) is corrupted first. */
  readonly nth: number;
  /** How many consecutive calls of it from there (Infinity: all). */
  readonly count: number;
  readonly corruption: Ec2Corruption;
  /**
   * Whether an answer so corrupted is one the agent cannot have understood: after it, no mutating
   * call may follow. The generator decides, per case.
   */
  readonly unparseable: boolean;
}

export interface Ec2Record {
  readonly action: string;
  readonly dryRun: boolean;
  readonly mutating: boolean;
  readonly accessKeyId: string;
  readonly corruption: Ec2Corruption['kind'] | null;
  readonly unparseable: boolean;
}

export interface PairModel {
  readonly allocationId: string;
  readonly publicIp: string;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly availabilityZone: string;
  readonly here: { readonly eni: string; readonly instanceId: string; readonly primaryIp: string };
  readonly peer: { readonly eni: string; readonly instanceId: string; readonly primaryIp: string };
  /** private IP → ENI that holds it */
  readonly ips: Map<string, string>;
  association: { eni: string; ip: string } | null;
}

export interface FakeEc2 {
  readonly endpoint: string;
  readonly records: Ec2Record[];
  readonly model: PairModel;
  /** Access keys EC2 no longer accepts (expired instance-profile credentials). */
  readonly expiredKeys: Set<string>;
  close(): Promise<void>;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const MUTATING: ReadonlySet<string> = new Set(['AssignPrivateIpAddresses', 'AssociateAddress']);

export function errorDocument(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>fuzz-request</RequestID></Response>`;
}

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export async function startFakeEc2(
  model: PairModel,
  faults: readonly Ec2Fault[],
): Promise<FakeEc2> {
  const records: Ec2Record[] = [];
  const expiredKeys = new Set<string>();
  const seen = new Map<string, number>();
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      handle(req, res, params);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  function handle(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    const action = params.get('Action') ?? '';
    const dryRun = params.get('DryRun') === 'true';
    const key = action === 'AssociateAddress' && dryRun ? 'AssociateAddress:DryRun' : action;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const fault = faults.find((f) => f.action === key && n >= f.nth && n < f.nth + f.count);
    const accessKeyId = /Credential=([^/]+)\//.exec(req.headers.authorization ?? '')?.[1] ?? '';
    records.push({
      action,
      dryRun,
      mutating: MUTATING.has(action) && !dryRun,
      accessKeyId,
      corruption: fault?.corruption.kind ?? null,
      unparseable: fault?.unparseable ?? false,
    });
    const c = fault?.corruption;
    if (c?.kind === 'hang') return;
    if (c?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (c?.kind === 'delay') {
      setTimeout(() => respond(req, res, action, dryRun, params, undefined, accessKeyId), c.ms);
      return;
    }
    respond(req, res, action, dryRun, params, c, accessKeyId);
  }

  function respond(
    req: IncomingMessage,
    res: ServerResponse,
    action: string,
    dryRun: boolean,
    params: URLSearchParams,
    c: Ec2Corruption | undefined,
    accessKeyId: string,
  ): void {
    if (expiredKeys.has(accessKeyId)) {
      const message = 'AWS was not able to validate the provided access credentials';
      send(res, 401, errorDocument('AuthFailure', message));
      return;
    }
    if (c?.kind === 'status') {
      send(res, c.status, c.body);
      return;
    }
    // A corrupted answer to a mutating call still takes effect: EC2 acted, the reply was mangled.
    const answer = answerFor(model, action, dryRun, params);
    if (c === undefined) {
      send(res, answer.status, answer.body);
      return;
    }
    if (c.kind === 'resetMidBody') {
      const body = Buffer.from(answer.body);
      res.writeHead(answer.status, { 'content-type': 'text/xml', 'content-length': body.length });
      res.write(body.subarray(0, Math.floor(body.length * c.at)));
      setImmediate(() => req.socket.destroy());
      return;
    }
    send(res, answer.status, corrupt(answer.body, c));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    records,
    model,
    expiredKeys,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: string): void {
  const bytes = Buffer.from(body);
  res.writeHead(status, {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': bytes.length,
  });
  res.end(bytes);
}

/** EC2's answer from the model, applying a mutating call's effect. */
function answerFor(
  m: PairModel,
  action: string,
  dryRun: boolean,
  p: URLSearchParams,
): { status: number; body: string } {
  const ok = (inner: string) => ({
    status: 200,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}">\n<requestId>fuzz-request</requestId>\n${inner}\n</${action}Response>`,
  });
  const fail = (status: number, code: string, message: string) => ({
    status,
    body: errorDocument(code, message),
  });
  switch (action) {
    case 'DescribeAddresses': {
      const ids = [...p.entries()].filter(([k]) => k.startsWith('AllocationId.')).map(([, v]) => v);
      if (ids.some((id) => id !== m.allocationId)) {
        return fail(
          400,
          'InvalidAllocationID.NotFound',
          `The allocation IDs '${ids}' do not exist`,
        );
      }
      const a = m.association;
      const owner = a === null ? null : a.eni === m.here.eni ? m.here : m.peer;
      const assoc =
        a === null || owner === null
          ? ''
          : `<instanceId>${owner.instanceId}</instanceId><associationId>eipassoc-0fuzz0000000000a1</associationId><networkInterfaceId>${a.eni}</networkInterfaceId><networkInterfaceOwnerId>123456789012</networkInterfaceOwnerId><privateIpAddress>${a.ip}</privateIpAddress>`;
      return ok(
        `<addressesSet><item><publicIp>${m.publicIp}</publicIp><allocationId>${m.allocationId}</allocationId><domain>vpc</domain>${assoc}<publicIpv4Pool>amazon</publicIpv4Pool><networkBorderGroup>eu-central-1</networkBorderGroup></item></addressesSet>`,
      );
    }
    case 'DescribeNetworkInterfaces': {
      let enis: string[];
      const byIp = filterValue(p, 'addresses.private-ip-address');
      if (byIp !== undefined) {
        const holder = m.ips.get(byIp);
        enis = holder === undefined ? [] : [holder];
      } else {
        enis = [...p.entries()]
          .filter(([k]) => k.startsWith('NetworkInterfaceId.'))
          .map(([, v]) => v);
        const unknown = enis.find((e) => e !== m.here.eni && e !== m.peer.eni);
        if (unknown !== undefined) {
          return fail(
            400,
            'InvalidNetworkInterfaceID.NotFound',
            `The networkInterface ID '${unknown}' does not exist`,
          );
        }
      }
      const items = enis
        .map((eni) => {
          const node = eni === m.here.eni ? m.here : m.peer;
          const ips = [...m.ips.entries()].filter(([, holder]) => holder === eni).map(([ip]) => ip);
          const ordered = [node.primaryIp, ...ips.filter((ip) => ip !== node.primaryIp)];
          return `<item><networkInterfaceId>${eni}</networkInterfaceId><subnetId>${m.subnetId}</subnetId><vpcId>${m.vpcId}</vpcId><availabilityZone>${m.availabilityZone}</availabilityZone><ownerId>123456789012</ownerId><status>in-use</status><privateIpAddress>${node.primaryIp}</privateIpAddress><sourceDestCheck>true</sourceDestCheck><privateIpAddressesSet>${ordered.map((ip) => `<item><privateIpAddress>${ip}</privateIpAddress><primary>${ip === node.primaryIp}</primary></item>`).join('')}</privateIpAddressesSet><interfaceType>interface</interfaceType></item>`;
        })
        .join('');
      return ok(`<networkInterfaceSet>${items}</networkInterfaceSet>`);
    }
    case 'AssignPrivateIpAddresses': {
      const eni = p.get('NetworkInterfaceId') ?? '';
      const ip = p.get('PrivateIpAddress.1') ?? '';
      const holder = m.ips.get(ip);
      if (holder !== undefined && holder !== eni && p.get('AllowReassignment') !== 'true') {
        return fail(400, 'PrivateIpAddressLimitExceeded', `${ip} is assigned to ${holder}`);
      }
      m.ips.set(ip, eni);
      if (m.association?.ip === ip) m.association = { eni, ip };
      return ok(
        `<networkInterfaceId>${eni}</networkInterfaceId><assignedPrivateIpAddressesSet><item><privateIpAddress>${ip}</privateIpAddress></item></assignedPrivateIpAddressesSet><return>true</return>`,
      );
    }
    case 'AssociateAddress': {
      if (dryRun) {
        return fail(
          412,
          'DryRunOperation',
          'Request would have succeeded, but DryRun flag is set.',
        );
      }
      const eni = p.get('NetworkInterfaceId') ?? '';
      const ip = p.get('PrivateIpAddress') ?? '';
      if (m.ips.get(ip) !== eni) {
        return fail(400, 'InvalidParameterValue', `${ip} is not assigned to ${eni}`);
      }
      m.association = { eni, ip };
      return ok('<return>true</return><associationId>eipassoc-0fuzz0000000000a1</associationId>');
    }
    default:
      return fail(400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
  }
}

function filterValue(p: URLSearchParams, name: string): string | undefined {
  for (const [k, v] of p.entries()) {
    const m = /^Filter\.(\d+)\.Name$/.exec(k);
    if (m && v === name) return p.get(`Filter.${m[1]}.Value.1`) ?? undefined;
  }
  return undefined;
}

/** Applies a body corruption to a well-formed answer. */
export function corrupt(body: string, c: Ec2Corruption): string {
  switch (c.kind) {
    case 'truncate': {
      // Strictly before the final '>' so the document is never complete.
      const end = body.lastIndexOf('>');
      return body.slice(0, Math.min(end, Math.floor(body.length * c.at)));
    }
    case 'empty':
      return '';
    case 'wrongRoot':
      return body.replace(/<(\/?)(\w+Response)([ >])/g, `<$1${c.root}$3`);
    case 'foreignDocument':
    case 'notXml':
      return c.body;
    case 'dropField':
      return body.replace(elementPattern(c.field), '');
    case 'duplicate': {
      const match = elementPattern(c.field).exec(body);
      return match ? body.replace(match[0], match[0] + match[0]) : body;
    }
    case 'wrongType':
      return body.replace(elementPattern(c.field), `<${c.field}>${c.value}</${c.field}>`);
    case 'extraElements': {
      let extra = '';
      for (let i = 0; i < c.count; i++) extra += `<futureField${i}>value ${i}</futureField${i}>`;
      return body.replace('<requestId>', `${extra}<requestId>`);
    }
    case 'huge':
      return body.replace('<requestId>', `<padding>${'x'.repeat(c.bytes)}</padding><requestId>`);
    default:
      return body;
  }
}

/** Elements with this tag, including nested items (non-greedy, innermost first for `item`). */
function elementPattern(tag: string): RegExp {
  if (tag === 'item') return /<item>(?:(?!<item>)[\s\S])*?<\/item>/g;
  return new RegExp(`<${tag}>[\\s\\S]*?</${tag}>|<${tag}/>`, 'g');
}
