import 'aws-sdk-client-mock-vitest/extend';
import { AssignPrivateIpAddressesCommand } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/src/config.js';
import { ConfigError } from '../../agent/src/errors.js';
import { Deadline } from '../../agent/src/retry.js';
import { AdaptiveRetry, StandardRetry } from '../../agent/src/retry-strategy.js';
import {
  ALLOCATION_ID,
  defaultConfig,
  ec2Error,
  useAgentFixture,
  VIP,
  virtualClock,
} from './harness.js';

// The SDK's retry modes as the agent runs them: the SDK's numbers and rate limiter, on the agent's
// clock, bounded by the command's deadline.

describe('standard mode (the SDK StandardRetryStrategy, 2026 parameters)', () => {
  it('backs off with full jitter from 1 s for throttling and 50 ms otherwise, doubling to a 20 s cap', () => {
    const retry = new StandardRetry(virtualClock()); // random() = 0.5: half of each ceiling
    const throttled = [0, 1, 2, 3, 4, 5, 6].map((n) => retry.onError('throttled', n));
    expect(throttled.map((d) => (d.retry ? d.delayMs : null))).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000,
    ]);
    const transient = [0, 1, 2].map((n) => retry.onError('transient', n));
    expect(transient.map((d) => (d.retry ? d.delayMs : null))).toEqual([25, 50, 100]);
    expect(retry.onError('network', 0)).toMatchObject({ retry: true, delayMs: 25 });
  });

  it('never retries a fatal error', () => {
    expect(new StandardRetry(virtualClock()).onError('fatal', 0)).toMatchObject({ retry: false });
  });

  it('takes 5 quota tokens per throttling retry and 14 per other retry, of 500, and refuses when empty', () => {
    const retry = new StandardRetry(virtualClock());
    for (let i = 0; i < 100; i++) expect(retry.onError('throttled', 0).retry).toBe(true);
    expect(retry.quotaLeft()).toBe(0);
    expect(retry.onError('throttled', 0)).toMatchObject({
      retry: false,
      reason: expect.stringMatching(/retry quota ran out/),
    });
  });

  it('gives back what the last retry took on a success after retries, and 1 on a first-try success', () => {
    const retry = new StandardRetry(virtualClock());
    const first = retry.onError('transient', 0);
    expect(retry.quotaLeft()).toBe(486);
    retry.onSuccess(first.retry ? first.cost : undefined);
    expect(retry.quotaLeft()).toBe(500);
    retry.onError('throttled', 0);
    retry.onSuccess(undefined);
    expect(retry.quotaLeft()).toBe(496);
  });
});

describe('adaptive mode (standard + the SDK DefaultRateLimiter)', () => {
  it('sends without waiting until the first throttling answer', async () => {
    const clock = virtualClock();
    const retry = new AdaptiveRetry(clock);
    const deadline = new Deadline(clock, 60_000);
    for (let i = 0; i < 20; i++) {
      expect(await retry.beforeAttempt(deadline)).toBe(true);
      retry.onSuccess(undefined);
    }
    expect(clock.elapsed()).toBe(0);
    expect(retry.sendRate()).toBeNull();
  });

  it('after a throttling answer, paces every request by a client-side rate that starts low', async () => {
    const clock = virtualClock();
    const retry = new AdaptiveRetry(clock);
    const deadline = new Deadline(clock, 60_000);
    await retry.beforeAttempt(deadline);
    retry.onError('throttled', 0);
    // A fresh process has measured no sending rate: the limiter falls to its floor, 0.5 per second.
    expect(retry.sendRate()).toBe(0.5);
    for (let i = 0; i < 3; i++) await retry.beforeAttempt(deadline);
    expect(clock.elapsed()).toBeGreaterThanOrEqual(4_000);
  });

  it('refuses a wait for the limiter that would outlast the deadline', async () => {
    const clock = virtualClock();
    const retry = new AdaptiveRetry(clock);
    const deadline = new Deadline(clock, 1_500);
    await retry.beforeAttempt(deadline);
    retry.onError('throttled', 0);
    expect(await retry.beforeAttempt(deadline)).toBe(false);
    expect(clock.elapsed()).toBe(0);
  });
});

describe('retryMode in the config', () => {
  const read = (file: Record<string, unknown>) =>
    loadConfig({ config: '/etc/eip-failover/config.json' }, {}, () =>
      JSON.stringify({ addresses: [{ allocationId: ALLOCATION_ID }], ...file }),
    );

  it('defaults to the mode the fleet simulation chose, and accepts both SDK modes', () => {
    expect(read({}).retryMode).toBe('standard');
    expect(read({ retryMode: 'adaptive' }).retryMode).toBe('adaptive');
    expect(read({ retryMode: 'standard' }).retryMode).toBe('standard');
  });

  it('rejects anything else with one line naming the allowed values', () => {
    expect(() => read({ retryMode: 'legacy' })).toThrow(ConfigError);
    expect(() => read({ retryMode: 'legacy' })).toThrow(
      /"retryMode" in \/etc\/eip-failover\/config.json must be "standard" or "adaptive", not "legacy"/,
    );
  });
});

describe('the agent runs the configured mode', () => {
  const t = useAgentFixture();

  it.each(['standard', 'adaptive'] as const)(
    '%s: throttled calls are retried to success',
    async (mode) => {
      await t.sandbox.writeConfig(defaultConfig(t.sandbox, { retryMode: mode }));
      t.world.mock
        .on(AssignPrivateIpAddressesCommand)
        .rejectsOnce(ec2Error('RequestLimitExceeded', 503))
        .rejectsOnce(ec2Error('RequestLimitExceeded', 503))
        .callsFake((input) => {
          t.world.ips.set(input.PrivateIpAddresses[0], input.NetworkInterfaceId);
          return {};
        });
      const result = await t.agent(['takeover']);
      expect(result.code, result.stderr).toBe(0);
      expect(t.world.mock).toHaveReceivedCommandTimes(AssignPrivateIpAddressesCommand, 3);
      const retries = result.logs.filter((l) => l.msg === 'ec2 call will be retried');
      expect(retries.map((r) => [r.action, r.retryMode])).toEqual([
        ['AssignPrivateIpAddresses', mode],
        ['AssignPrivateIpAddresses', mode],
      ]);
    },
  );

  it('adaptive: once throttled, the calls after it wait for the client-side limiter', async () => {
    const elapsed: Record<string, number> = {};
    for (const mode of ['standard', 'adaptive'] as const) {
      // The same pair and the same single throttling answer for each mode.
      t.world.ips.delete(VIP);
      t.world.association = null;
      t.world.mock.resetHistory();
      t.world.mock
        .on(AssignPrivateIpAddressesCommand)
        .rejectsOnce(ec2Error('RequestLimitExceeded', 503))
        .callsFake((input) => {
          t.world.ips.set(input.PrivateIpAddresses[0], input.NetworkInterfaceId);
          return {};
        });
      await t.sandbox.writeConfig(defaultConfig(t.sandbox, { retryMode: mode }));
      const before = t.clock.elapsed();
      const result = await t.agent(['takeover']);
      expect(result.code, result.stderr).toBe(0);
      elapsed[mode] = t.clock.elapsed() - before;
    }
    // Standard spends the backoff (500 ms with this clock's jitter); adaptive also waits for its
    // limiter, which a fresh process sets to its floor of 0.5 requests per second.
    expect(elapsed.standard).toBeLessThan(1_000);
    expect(elapsed.adaptive).toBeGreaterThan((elapsed.standard ?? 0) + 1_500);
  });
});
