import { describe, expect, it } from 'vitest';
import { runAgent, useAgentFixture } from './harness.js';

/**
 * Regressions found by the fuzzer (test/fuzz): bad input of every kind ends with exit 2 and one
 * line on stderr that starts with "eip-failover:" and names the problem.
 */
const t = useAgentFixture();

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  const [line] = lines as [string];
  expect(line).toMatch(/^eip-failover: /);
  return line;
}

describe('command-line errors are one line', () => {
  it.each([
    [['takeover', '--bogus'], /unknown option '--bogus'/],
    [
      ['takeover', '--allocation_id', 'x'],
      /unknown option '--allocation_id' \(Did you mean --allocation-id\?\)/,
    ],
    [['--region', 'x', 'takeover'], /unknown option '--region'/],
    [['failover'], /unknown command 'failover'/],
    [['takeover', '--deadline'], /option '--deadline <seconds>' argument missing/],
    [['notify', 'INSTANCE'], /missing required argument 'name'/],
    [['notify', 'INSTANCE', 'VI_1', 'MASTER', '100', 'extra'], /too many arguments for 'notify'/],
  ])('%j', async (argv, message) => {
    // Parse errors come before the config is read: no -c needed.
    const result = await runAgent(argv);
    expect(result.code).toBe(2);
    const line = oneLine(result.stderr);
    expect(line).toMatch(message);
    expect(line).toMatch(/run eip-failover --help for usage/);
    expect(t.world.mock.calls()).toHaveLength(0);
  });

  it('no arguments at all: one line naming the commands, not the whole help', async () => {
    const result = await runAgent([]);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toMatch(/a command is required \(takeover, release,/);
  });

  it('--help still prints the whole help on stdout', async () => {
    const result = await runAgent(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Usage: eip-failover/);
    expect(result.stderr).toBe('');
  });
});
