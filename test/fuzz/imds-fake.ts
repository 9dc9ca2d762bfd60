import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Metadata } from '../support/imds-stub.js';

/**
 * An IMDSv2 stand-in for fuzzing: answers like test/support/imds-stub.ts (tokens required, no
 * IMDSv1), except that a script replaces chosen answers, per path, with generated ones —
 * including answers the shared stub cannot give (a reset, a close mid-body, an oversized body).
 */

/** `token` is PUT /latest/api/token; anything else is a path under /latest/meta-data/. */
export type ImdsTarget = string;

export type ImdsAnswer =
  | { kind: 'body'; status: number; body: string }
  | { kind: 'oversized'; bytes: number }
  | { kind: 'reset' }
  /** Headers promise the full length; half the body, then the connection ends. */
  | { kind: 'closeMidBody' }
  /** The right answer, this many real milliseconds late. */
  | { kind: 'slow'; ms: number }
  | { kind: 'hang' };

export interface ImdsFault {
  readonly target: ImdsTarget;
  /** Requests to the target that get this answer before the real one returns (Infinity: all). */
  readonly count: number;
  readonly answer: ImdsAnswer;
}

export interface FakeImds {
  readonly endpoint: string;
  readonly requests: Array<{ method: string; path: string }>;
  close(): Promise<void>;
}

export async function startFakeImds(
  metadata: Metadata,
  faults: readonly ImdsFault[],
): Promise<FakeImds> {
  const tokens = new Set<string>();
  const requests: Array<{ method: string; path: string }> = [];
  const used = new Map<ImdsFault, number>();
  const sockets = new Set<Socket>();

  const reply = (res: ServerResponse, status: number, body: string | Buffer) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': bytes.length });
    res.end(bytes);
  };

  const server = createServer(async (req, res) => {
    const url = req.url ?? '/';
    requests.push({ method: req.method ?? '', path: url });
    const isToken = req.method === 'PUT' && url === '/latest/api/token';
    const path = url.startsWith('/latest/meta-data/') ? url.slice('/latest/meta-data/'.length) : '';
    const target = isToken ? 'token' : path;
    const fault = faults.find((f) => f.target === target && (used.get(f) ?? 0) < f.count);
    if (fault) used.set(fault, (used.get(fault) ?? 0) + 1);
    const a = fault?.answer;
    if (a?.kind === 'hang') return;
    if (a?.kind === 'reset') return req.socket.destroy();
    if (a?.kind === 'slow') await new Promise((r) => setTimeout(r, a.ms));

    const real = async (): Promise<{ status: number; body: string }> => {
      if (isToken) {
        const token = randomBytes(24).toString('base64url');
        tokens.add(token);
        return { status: 200, body: token };
      }
      if (req.method !== 'GET' || path === '') return { status: 404, body: 'Not Found' };
      const token = req.headers['x-aws-ec2-metadata-token'];
      if (typeof token !== 'string' || !tokens.has(token)) return { status: 401, body: '' };
      const value = await metadata(path);
      return value === undefined
        ? { status: 404, body: 'Not Found' }
        : { status: 200, body: value };
    };

    if (a?.kind === 'body') return reply(res, a.status, a.body);
    if (a?.kind === 'oversized') return reply(res, 200, Buffer.alloc(a.bytes, 0x61));
    const answer = await real();
    if (a?.kind === 'closeMidBody') {
      const bytes = Buffer.from(answer.body.length > 1 ? answer.body : 'partial-body');
      res.writeHead(answer.status, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      setImmediate(() => req.socket.destroy());
      return;
    }
    reply(res, answer.status, answer.body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
