/**
 * A one-off look at where loading the agent's bundle spends its time, by package: builds the bundle
 * as scripts/build-agent.mjs does (minified) plus a source map into a temp dir, runs `--version`
 * under `node --cpu-prof` a few times, and attributes each sample's self time to the package of
 * its source position. Profiles stay in the temp dir and are deleted.
 *
 *   npx tsx bench/load-profile.ts [--runs 5] [--command "--version"]
 *
 * Not part of `npm run bench`: sampling at 100 µs perturbs timings; read the shares, not the sums.
 * Keep the build options below in step with scripts/build-agent.mjs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { median, ROOT, table } from './harness.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber: number;
  };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** `node_modules/@smithy/core/dist-es/x.js` → `@smithy/core`; `agent/src/cli.ts` → `agent/src`. */
function packageOf(source: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(source);
  if (m?.[1]) return m[1];
  if (source.includes('agent/src/')) return 'agent/src';
  return source;
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    command: { type: 'string', default: '--version' },
  },
});
const runs = Number(values.runs);
const dir = mkdtempSync(join(tmpdir(), 'eip-failover-load-profile-'));
try {
  const outfile = join(dir, 'eip-failover.mjs');
  const result = await build({
    entryPoints: [join(ROOT, 'agent/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    mainFields: ['module', 'main'],
    target: 'node20',
    format: 'esm',
    minify: true,
    legalComments: 'none',
    sourcemap: 'external',
    metafile: true,
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'warning',
  });
  const bytes = new Map<string, number>();
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined);
  for (const [input, info] of Object.entries(output?.inputs ?? {})) {
    bytes.set(packageOf(input), (bytes.get(packageOf(input)) ?? 0) + info.bytesInOutput);
  }
  const map = new SourceMap(JSON.parse(readFileSync(`${outfile}.map`, 'utf8')));
  const bundleUrl = pathToFileURL(outfile).href;

  const perRun: Map<string, number>[] = [];
  for (let i = 0; i < runs; i++) {
    const profDir = join(dir, `prof-${i}`);
    execFileSync(
      process.execPath,
      [
        '--cpu-prof',
        '--cpu-prof-interval',
        '100',
        '--cpu-prof-dir',
        profDir,
        outfile,
        ...(values.command ?? '--version').split(' '),
      ],
      { stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } },
    );
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('node --cpu-prof wrote no profile');
    const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    profile.samples.forEach((id, k) => {
      const node = byId.get(id);
      const us = profile.timeDeltas[k] ?? 0;
      if (!node) return;
      const { url, lineNumber, columnNumber, functionName } = node.callFrame;
      let key: string;
      if (url === bundleUrl) {
        const entry = map.findEntry(lineNumber, columnNumber) as { originalSource?: string };
        key = entry.originalSource ? packageOf(entry.originalSource) : 'bundle (unmapped)';
      } else if (url === '') {
        key = functionName.startsWith('(') ? functionName : 'native';
      } else {
        key = url.startsWith('node:') ? `node internals: ${url.slice(5)}` : url;
      }
      if (key === '(idle)') return;
      self.set(key, (self.get(key) ?? 0) + us / 1000);
    });
    perRun.push(self);
  }
  const keys = new Set(perRun.flatMap((m) => [...m.keys()]));
  const rows = [...keys]
    .map((k) => ({ k, ms: median(perRun.map((m) => m.get(k) ?? 0)) }))
    .sort((a, b) => b.ms - a.ms)
    .filter((r) => r.ms >= 0.5);
  const total = median(perRun.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  process.stdout.write(
    `node ${outfile.split('/').pop()} ${values.command}: CPU self time by package (median of ${runs}; total ${total.toFixed(0)} ms sampled)\n\n`,
  );
  process.stdout.write(
    table(
      ['where', 'self time', 'share', 'bytes in bundle'],
      rows.map(({ k, ms }) => [
        k,
        `${ms.toFixed(1)} ms`,
        `${((100 * ms) / total).toFixed(0)} %`,
        bytes.has(k) ? `${((bytes.get(k) ?? 0) / 1024).toFixed(0)} KiB` : '',
      ]),
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
