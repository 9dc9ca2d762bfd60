import type { EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { type Emulator, startEmulator } from '../support/emulator.js';

export interface EmulatorContext {
  readonly emulator: Emulator;
  /** A client that makes one attempt per call, so injected errors are seen, not retried away. */
  readonly ec2: EC2Client;
}

/**
 * One emulator for the test file, stopped after it (also when a test fails), reset to a fresh EC2
 * before each test. Read the fields inside tests and hooks, not at module load.
 */
export function useEmulator(): EmulatorContext {
  const context: { emulator?: Emulator; ec2?: EC2Client } = {};
  beforeAll(async () => {
    context.emulator = await startEmulator();
    context.ec2 = context.emulator.client({ maxAttempts: 1 });
  });
  afterAll(async () => {
    context.ec2?.destroy();
    await context.emulator?.stop();
  });
  beforeEach(() => started().emulator.reset());

  const started = () => {
    const { emulator, ec2 } = context;
    if (!emulator || !ec2) throw new Error('the emulator is not started yet (use it inside tests)');
    return { emulator, ec2 };
  };
  return {
    get emulator() {
      return started().emulator;
    },
    get ec2() {
      return started().ec2;
    },
  };
}

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
