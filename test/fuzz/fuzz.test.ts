import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCase, FAMILIES, type Family, type FuzzCase } from './cases.js';
import { generate } from './generators.js';
import { type Outcome, runInProcess, runProcess, violations } from './runner.js';

/**
 * Issue #7, "bad input": generated command lines, config files, IMDS answers and EC2 answers, each
 * a valid invocation with one targeted corruption. Every case must end by itself with the exit code
 * its generator expects, one clear line (never a stack trace), no API call for a usage or config
 * error, and no mutating EC2 call after an answer the agent could not parse.
 *
 * FUZZ_SEED (default "7"), FUZZ_CASES (in-process cases in all, default 3000), FUZZ_PROCESS_CASES
 * (cases also run through the built bundle, default 120), FUZZ_ONLY=family#index (replay one).
 */
const SEED = process.env.FUZZ_SEED ?? '7';
const TOTAL = Number(process.env.FUZZ_CASES ?? 3_000);
const PROCESS_TOTAL = Number(process.env.FUZZ_PROCESS_CASES ?? 120);
const ONLY = process.env.FUZZ_ONLY;
const SHARE: Record<Family, number> = { cli: 0.3, config: 0.3, imds: 0.2, ec2: 0.2 };
const BUNDLE = resolve(import.meta.dirname, '../../agent/dist/eip-failover.mjs');

interface Failure {
  readonly c: FuzzCase;
  readonly o: Outcome;
  readonly problems: string[];
  readonly where: 'in-process' | 'process';
}

const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

function report(failures: readonly Failure[]): string {
  return failures
    .slice(0, 15)
    .map(({ c, o, problems, where }) =>
      [
        `${c.id} (${where}) ${c.what}: ${problems.join('; ')}`,
        `  replay: FUZZ_SEED=${SEED} FUZZ_ONLY=${c.id} npx vitest run test/fuzz/fuzz.test.ts`,
        `  exit ${o.code}; stderr ${JSON.stringify(cut(o.stderr, 400))}`,
        `  stdout ${JSON.stringify(cut(o.stdout, 200))}`,
        `  ec2 ${JSON.stringify(o.ec2.map((r) => `${r.action}${r.dryRun ? '(DryRun)' : ''}${r.corruption ? `[${r.corruption}]` : ''}`))}`,
        `  case ${cut(describeCase(c), 1_500)}`,
      ].join('\n'),
    )
    .join('\n\n');
}

function countsFor(total: number): Record<Family, number> {
  return Object.fromEntries(FAMILIES.map((f) => [f, Math.round(total * SHARE[f])])) as Record<
    Family,
    number
  >;
}

let root: string;
const summary: string[] = [];
const started = Date.now();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'eip-failover-fuzz-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`fuzz seed ${SEED}: ${summary.join(', ')}; ${seconds} s`);
});

if (ONLY !== undefined) {
  it(`replays ${ONLY} of seed ${SEED}`, async () => {
    const [family, index] = ONLY.split('#') as [Family, string];
    const c = generate(SEED, family, Number(index));
    console.log(describeCase(c));
    const o = await runInProcess(c, root);
    console.log(
      JSON.stringify({ code: o.code, stdout: o.stdout, stderr: o.stderr, ec2: o.ec2 }, null, 2),
    );
    const problems = violations(c, o, 'in-process');
    if (!c.expect.slow && existsSync(BUNDLE)) {
      const p = await runProcess(c, root, BUNDLE);
      console.log(
        JSON.stringify({ process: { code: p.code, stdout: p.stdout, stderr: p.stderr } }, null, 2),
      );
      problems.push(...violations(c, p, 'process').map((v) => `process: ${v}`));
    }
    expect(problems).toEqual([]);
  }, 180_000);
} else {
  describe.sequential(`fuzz (seed ${SEED})`, () => {
    for (const family of FAMILIES) {
      const n = countsFor(TOTAL)[family];
      it(`${family}: ${n} generated cases, in process`, async () => {
        const failures: Failure[] = [];
        const exits = new Map<string, number>();
        const t0 = Date.now();
        for (let i = 0; i < n; i++) {
          const c = generate(SEED, family, i);
          const o = await runInProcess(c, root);
          exits.set(String(o.code), (exits.get(String(o.code)) ?? 0) + 1);
          const problems = violations(c, o, 'in-process');
          if (problems.length > 0) failures.push({ c, o, problems, where: 'in-process' });
        }
        summary.push(`${family} ${n}`);
        const byExit = [...exits.entries()].sort().map(([code, k]) => `exit ${code}: ${k}`);
        console.log(
          `${family}: ${n} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s (${byExit.join(', ')}), ${failures.length} failed`,
        );
        expect(failures.length, report(failures)).toBe(0);
      }, 600_000);
    }

    it(`the built bundle, as a child process: ${PROCESS_TOTAL} cases`, async () => {
      if (!existsSync(BUNDLE)) execFileSync(process.execPath, ['scripts/build-agent.mjs']);
      const failures: Failure[] = [];
      const cases: FuzzCase[] = [];
      const per = countsFor(PROCESS_TOTAL);
      // The first cases of each family that end within a second or two of real time.
      for (const family of FAMILIES) {
        for (let i = 0; cases.filter((c) => c.family === family).length < per[family]; i++) {
          const c = generate(SEED, family, i);
          if (!c.expect.slow) cases.push(c);
        }
      }
      const t0 = Date.now();
      const queue = [...cases];
      const worker = async () => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
          const o = await runProcess(c, root, BUNDLE);
          const problems = violations(c, o, 'process');
          if (problems.length > 0) failures.push({ c, o, problems, where: 'process' });
        }
      };
      await Promise.all([worker(), worker(), worker()]);
      summary.push(`bundle ${cases.length}`);
      console.log(
        `bundle: ${cases.length} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${failures.length} failed`,
      );
      expect(failures.length, report(failures)).toBe(0);
    }, 600_000);
  });
}
