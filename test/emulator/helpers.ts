import type { EC2ServiceException } from '@aws-sdk/client-ec2';

export interface Ec2Failure {
  readonly name: string;
  readonly status: number | undefined;
  readonly message: string;
}

/** The EC2 error a call ends with; fails the test if the call succeeds. */
export async function ec2Failure(call: Promise<unknown>): Promise<Ec2Failure> {
  try {
    await call;
  } catch (err) {
    const e = err as EC2ServiceException;
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('expected the EC2 call to fail, and it succeeded');
}
