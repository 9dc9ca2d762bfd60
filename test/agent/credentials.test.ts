import { describe, expect, it } from 'vitest';
import { resolveCredentials } from '../../agent/src/credentials.js';
import type { Imds } from '../../agent/src/imds.js';

/** An instance profile behind a counting IMDS that answers a little later, as a real one does. */
function profileImds(): Imds & { paths: string[] } {
  const paths: string[] = [];
  const answers: Record<string, string> = {
    'iam/security-credentials/': 'pair-node-role\n',
    'iam/security-credentials/pair-node-role': JSON.stringify({
      Code: 'Success',
      AccessKeyId: 'ASIATESTONLY',
      SecretAccessKey: 'test-secret-only',
      Token: 'test-session-token',
      Expiration: '2099-01-01T00:00:00Z',
    }),
  };
  return {
    paths,
    get: async (path: string) => {
      paths.push(path);
      await new Promise((r) => setTimeout(r, 20));
      const answer = answers[path];
      if (answer === undefined) throw new Error(`no ${path}`);
      return answer;
    },
  } as Imds & { paths: string[] };
}

describe('instance-profile credentials', () => {
  it('two callers at once share one fetch from IMDS', async () => {
    const imds = profileImds();
    const { provider } = resolveCredentials(imds, {});
    const [a, b] = await Promise.all([provider(), provider()]);
    expect(a.accessKeyId).toBe('ASIATESTONLY');
    expect(b).toEqual(a);
    expect(imds.paths).toEqual([
      'iam/security-credentials/',
      'iam/security-credentials/pair-node-role',
    ]);
  });

  it('a later caller fetches again (the SDK decides when to refresh)', async () => {
    const imds = profileImds();
    const { provider } = resolveCredentials(imds, {});
    await provider();
    await provider();
    // The role name is learned once; the credentials are asked for each time.
    expect(imds.paths.filter((p) => p.endsWith('pair-node-role'))).toHaveLength(2);
    expect(imds.paths.filter((p) => p === 'iam/security-credentials/')).toHaveLength(1);
  });
});
