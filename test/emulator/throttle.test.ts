// EC2's request rate limiting as token buckets: off unless set, one bucket per API action sized by
// its category, refilled at a set rate up to its capacity, and answered as EC2 answers an empty
// bucket (RequestLimitExceeded, HTTP 503, EC2's XML error document).
import {
  AllocateAddressCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { EC2_DOCUMENTED_BUCKETS } from '../support/emulator.js';
import { ec2Failure, useEmulator } from './helpers.js';

const env = useEmulator();

const allocate = (dryRun = false) =>
  env.ec2.send(new AllocateAddressCommand({ Domain: 'vpc', ...(dryRun ? { DryRun: true } : {}) }));
const describeAddresses = () => env.ec2.send(new DescribeAddressesCommand({}));

/** Sends calls one after another; how many were throttled. */
async function throttledOf(calls: number, send: () => Promise<unknown>): Promise<number> {
  let throttled = 0;
  for (let i = 0; i < calls; i++) {
    try {
      await send();
    } catch (err) {
      if ((err as Error).name !== 'RequestLimitExceeded') throw err;
      throttled += 1;
    }
  }
  return throttled;
}

describe('token buckets', () => {
  it('are off by default: nothing is throttled', async () => {
    expect((await env.emulator.throttle()).enabled).toBe(false);
    expect(await throttledOf(60, () => allocate())).toBe(0);
  });

  it('honour the capacity, then answer RequestLimitExceeded (503) logged as fault "bucket"', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 3, refillPerSecond: 1 },
      manualClock: true,
    });

    expect(await throttledOf(3, () => allocate())).toBe(0);
    expect(await ec2Failure(allocate())).toMatchObject({
      name: 'RequestLimitExceeded',
      status: 503,
    });

    const log = await env.emulator.actions();
    expect(log.map((a) => [a.action, a.status, a.fault, a.errorCode])).toEqual([
      ['AllocateAddress', 200, null, null],
      ['AllocateAddress', 200, null, null],
      ['AllocateAddress', 200, null, null],
      ['AllocateAddress', 503, 'bucket', 'RequestLimitExceeded'],
    ]);
    expect((await env.emulator.throttle()).buckets.AllocateAddress).toMatchObject({
      capacity: 3,
      tokens: 0,
      allowed: 3,
      throttled: 1,
    });
  });

  it("answer in EC2's XML error format", async () => {
    await env.emulator.setThrottle({
      nonMutating: { capacity: 1, refillPerSecond: 0 },
      manualClock: true,
    });
    await describeAddresses();

    const res = await fetch(env.emulator.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeAddresses&Version=2016-11-15',
    });

    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(
      /<Response><Errors><Error><Code>RequestLimitExceeded<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    );
  });

  it('refill at the set rate, never beyond the capacity', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 3, refillPerSecond: 2, initialTokens: 0 },
      manualClock: true,
    });
    expect(await throttledOf(1, () => allocate())).toBe(1);

    await env.emulator.advanceThrottleClock(0.5); // one token
    expect(await throttledOf(2, () => allocate())).toBe(1);

    await env.emulator.advanceThrottleClock(60); // 120 tokens' worth, capped at 3
    expect(await throttledOf(4, () => allocate())).toBe(1);
  });

  it('refill in real time when the clock is not manual', async () => {
    await env.emulator.setThrottle({ mutating: { capacity: 1, refillPerSecond: 0.5 } });
    expect(await throttledOf(2, () => allocate())).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(await throttledOf(1, () => allocate())).toBe(0);
  });

  it('count mutating and non-mutating calls separately, one bucket per action', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 2, refillPerSecond: 0 },
      nonMutating: { capacity: 5, refillPerSecond: 0 },
      manualClock: true,
    });

    expect(await throttledOf(3, () => allocate())).toBe(1);
    expect(await throttledOf(6, describeAddresses)).toBe(1);
    // Another non-mutating action has its own bucket of the same size.
    expect(
      await throttledOf(5, () =>
        env.ec2.send(
          new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'vpc-id', Values: ['x'] }] }),
        ),
      ),
    ).toBe(0);
  });

  it('size an action named in "actions" by its own spec, not its category', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 1, refillPerSecond: 0 },
      actions: { AllocateAddress: { capacity: 4, refillPerSecond: 0 } },
      manualClock: true,
    });

    expect(await throttledOf(5, () => allocate())).toBe(1);
  });

  it('draw DescribeNetworkInterfaces without a filter or pagination from the smaller bucket', async () => {
    await env.emulator.setThrottle({
      nonMutating: { capacity: 3, refillPerSecond: 0 },
      unfilteredNonMutating: { capacity: 1, refillPerSecond: 0 },
      manualClock: true,
    });
    const unfiltered = () =>
      env.ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [] }));
    const paginated = () => env.ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 5 }));

    expect(await throttledOf(2, unfiltered)).toBe(1);
    expect(await throttledOf(4, paginated)).toBe(1);
    expect(Object.keys((await env.emulator.throttle()).buckets).sort()).toEqual([
      'DescribeNetworkInterfaces',
      'DescribeNetworkInterfaces/unfiltered',
    ]);
  });

  it('take a token for a DryRun request, which is throttled like any other', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 2, refillPerSecond: 0 },
      manualClock: true,
    });

    expect((await ec2Failure(allocate(true))).name).toBe('DryRunOperation');
    await allocate();
    expect(await ec2Failure(allocate(true))).toMatchObject({
      name: 'RequestLimitExceeded',
      status: 503,
    });
  });

  it('start at initialTokens: an account already busy when the event starts', async () => {
    await env.emulator.setThrottle({
      ...EC2_DOCUMENTED_BUCKETS,
      mutating: { ...EC2_DOCUMENTED_BUCKETS.mutating, initialTokens: 2 },
      manualClock: true,
    });

    expect(await throttledOf(3, () => allocate())).toBe(1);
    expect((await env.emulator.throttle()).buckets.AllocateAddress).toMatchObject({
      capacity: 50,
      refillPerSecond: 5,
    });
  });

  it("let an observer's requests through unthrottled and unlogged", async () => {
    await env.emulator.setThrottle({
      nonMutating: { capacity: 1, refillPerSecond: 0 },
      manualClock: true,
    });
    const observer = env.emulator.observerClient();

    for (let i = 0; i < 3; i++) await observer.send(new DescribeAddressesCommand({}));
    expect(await throttledOf(2, describeAddresses)).toBe(1);
    expect(await env.emulator.actions()).toHaveLength(2);
    observer.destroy();
  });

  it('switch off with {} and with the reset', async () => {
    await env.emulator.setThrottle({
      mutating: { capacity: 1, refillPerSecond: 0 },
      manualClock: true,
    });
    expect(await throttledOf(2, () => allocate())).toBe(1);

    await env.emulator.setThrottle({});
    expect(await throttledOf(3, () => allocate())).toBe(0);

    await env.emulator.setThrottle({ mutating: { capacity: 1, refillPerSecond: 0 } });
    await env.emulator.reset();
    expect(await throttledOf(3, () => allocate())).toBe(0);
  });

  it('refuse a malformed configuration and keep the one in force', async () => {
    await env.emulator.setThrottle({ mutating: { capacity: 1, refillPerSecond: 0 } });
    await expect(
      env.emulator.setThrottle({ mutating: { capacity: 0, refillPerSecond: 1 } }),
    ).rejects.toThrow(/capacity >= 1/);
    await expect(env.emulator.setThrottle({ mutatng: { capacity: 1 } } as never)).rejects.toThrow(
      /unknown throttle keys: mutatng/,
    );
    expect(await throttledOf(2, () => allocate())).toBe(1);
  });

  it('log the caller: the access key id each request was signed with', async () => {
    await allocate();
    expect((await env.emulator.actions())[0]?.accessKeyId).toBe('AKIDTESTONLY');
  });
});
