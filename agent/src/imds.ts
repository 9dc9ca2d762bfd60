import { request } from 'node:http';
import { ImdsError } from './errors.js';

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';
const TOKEN_TTL_SECONDS = 21_600;
const MAX_BODY_BYTES = 64 * 1024;
const TRANSIENT_ATTEMPTS = 3;

/** Reads instance metadata. Paths are relative to /latest/meta-data/. */
export interface Imds {
  get(path: string): Promise<string>;
  readonly endpoint: string;
}

export interface ImdsClientOptions {
  /** Base URL; the SDK's variable AWS_EC2_METADATA_SERVICE_ENDPOINT sets it in production. */
  readonly endpoint?: string;
  /** Per request, connect to last byte. IMDS answers in about a millisecond when it is there. */
  readonly timeoutMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

interface RawResponse {
  readonly status: number;
  readonly body: string;
}

/**
 * IMDSv2 only: a session token from PUT /latest/api/token, reused for every request of the run
 * (IMDS throttles per instance), refreshed once on 401. There is deliberately no IMDSv1 fallback.
 */
export class ImdsClient implements Imds {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private token: Promise<string> | undefined;

  constructor(options: ImdsClientOptions = {}) {
    this.endpoint = (options.endpoint ?? DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 1_000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async get(path: string): Promise<string> {
    const url = `${this.endpoint}/latest/meta-data/${path.replace(/^\/+/, '')}`;
    let response = await this.send('GET', url, {
      'x-aws-ec2-metadata-token': await this.getToken(),
    });
    if (response.status === 401) {
      // The token expired or the service restarted: one fresh token, one more try.
      this.token = undefined;
      response = await this.send('GET', url, { 'x-aws-ec2-metadata-token': await this.getToken() });
    }
    if (response.status === 200) return response.body;
    if (response.status === 404) {
      throw new ImdsError(`IMDS has no ${path} on this instance (404 from ${this.endpoint})`, 404);
    }
    throw new ImdsError(
      `IMDS answered ${response.status} for ${path} at ${this.endpoint}`,
      response.status,
    );
  }

  private getToken(): Promise<string> {
    if (this.token === undefined) {
      const pending = this.fetchToken();
      // A failed fetch must not be cached: the next call tries again.
      pending.catch(() => {
        if (this.token === pending) this.token = undefined;
      });
      this.token = pending;
    }
    return this.token;
  }

  private async fetchToken(): Promise<string> {
    const response = await this.send('PUT', `${this.endpoint}/latest/api/token`, {
      'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS),
    });
    if (response.status === 200 && /^[\x21-\x7e]{1,1024}$/.test(response.body))
      return response.body;
    if (response.status === 200) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned a malformed session token`, 200);
    }
    if (response.status === 403) {
      throw new ImdsError(
        `IMDS at ${this.endpoint} refused a session token (403): the metadata service is disabled for this instance; enable it (HttpEndpoint=enabled)`,
        403,
      );
    }
    throw new ImdsError(
      `IMDS at ${this.endpoint} answered ${response.status} to the IMDSv2 token request`,
      response.status,
    );
  }

  /** One HTTP exchange, retried a few times on connection errors, timeouts, 429 and 5xx. */
  private async send(
    method: string,
    url: string,
    headers: Record<string, string>,
  ): Promise<RawResponse> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= TRANSIENT_ATTEMPTS; attempt++) {
      try {
        const response = await this.exchange(method, url, headers);
        if (response.status !== 429 && response.status < 500) return response;
        lastError = new ImdsError(
          `IMDS at ${this.endpoint} answered ${response.status}`,
          response.status,
        );
      } catch (err) {
        lastError = err;
      }
      if (attempt < TRANSIENT_ATTEMPTS) await this.sleep(50 * 2 ** attempt);
    }
    if (lastError instanceof ImdsError) throw lastError;
    const detail = (lastError as NodeJS.ErrnoException)?.code ?? (lastError as Error)?.message;
    throw new ImdsError(
      `IMDS unreachable at ${this.endpoint} (${detail}); check that the metadata service is enabled and that the hop limit allows this process to reach it`,
      undefined,
      { cause: lastError },
    );
  }

  private exchange(
    method: string,
    url: string,
    headers: Record<string, string>,
  ): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy(new ImdsError(`IMDS response from ${url} exceeds ${MAX_BODY_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      req.end();
    });
  }
}
