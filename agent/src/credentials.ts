import { fromEnv } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { ImdsError } from './errors.js';
import type { Imds } from './imds.js';

export interface Credentials {
  readonly provider: AwsCredentialIdentityProvider;
  /** A sentence saying where the credentials come from, for `check`. Resolves them. */
  readonly describe: () => Promise<string>;
}

/**
 * Environment variables when set (operators, tests); otherwise the instance profile, read through
 * the same IMDSv2 client and token as the rest of the run. Never keys on disk.
 */
export function resolveCredentials(imds: Imds, env: NodeJS.ProcessEnv): Credentials {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    const provider = fromEnv();
    return {
      provider,
      describe: async () => {
        const creds = await provider();
        return `environment variables (access key ${mask(creds.accessKeyId)})`;
      },
    };
  }
  let role: string | undefined;
  let inFlight: Promise<AwsCredentialIdentity> | undefined;
  // Calls that start together (observe sends two) share one fetch instead of asking IMDS twice.
  const provider: AwsCredentialIdentityProvider = () => {
    inFlight ??= (async () => {
      role ??= await instanceProfileRole(imds);
      return instanceProfileCredentials(imds, role);
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  return {
    provider,
    describe: async () => {
      const creds = await provider();
      return `instance profile role ${role} (access key ${mask(creds.accessKeyId)}, expires ${creds.expiration?.toISOString() ?? 'never'})`;
    },
  };
}

async function instanceProfileRole(imds: Imds): Promise<string> {
  let listing: string;
  try {
    listing = await imds.get('iam/security-credentials/');
  } catch (err) {
    if (err instanceof ImdsError && err.status === 404) {
      throw new ImdsError(
        'no IAM instance profile is attached to this instance; attach the one the CDK stack creates (or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for a manual run)',
        404,
      );
    }
    throw err;
  }
  const role = listing.split('\n')[0]?.trim() ?? '';
  if (!/^[\w+=,.@-]{1,128}$/.test(role))
    throw new ImdsError('IMDS listed no usable instance profile role name');
  return role;
}

async function instanceProfileCredentials(
  imds: Imds,
  role: string,
): Promise<AwsCredentialIdentity> {
  const body = await imds.get(`iam/security-credentials/${role}`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw new ImdsError(`IMDS returned credentials for role ${role} that are not JSON`);
  }
  const { Code, AccessKeyId, SecretAccessKey, Token, Expiration } = doc;
  if (
    Code !== 'Success' ||
    typeof AccessKeyId !== 'string' ||
    typeof SecretAccessKey !== 'string' ||
    typeof Token !== 'string'
  ) {
    throw new ImdsError(
      `IMDS has no usable credentials for role ${role} (Code ${JSON.stringify(Code ?? null)})`,
    );
  }
  const expiration = typeof Expiration === 'string' ? new Date(Expiration) : undefined;
  return {
    accessKeyId: AccessKeyId,
    secretAccessKey: SecretAccessKey,
    sessionToken: Token,
    ...(expiration && !Number.isNaN(expiration.getTime()) ? { expiration } : {}),
  };
}

function mask(accessKeyId: string): string {
  return `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}`;
}
