// Bundles the agent into one executable file that runs with plain `node`, no node_modules.
//
// keepalived starts a new process for every transition, so start-up is most of the agent's own
// share of a failover, and most of start-up is V8 compiling the ~1 MB bundle (about 75 ms here).
// So the bundle is a CommonJS script embedded in a small ES-module launcher that compiles it with
// a V8 code cache (vm.Script cachedData) kept in a directory only the agent's user can write:
// later runs skip the compilation. The same on Node 20 and 22. See agent/launcher.mjs.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { build } from 'esbuild';

const outfile = 'agent/dist/eip-failover.mjs';
await mkdir('agent/dist', { recursive: true });
const result = await build({
  entryPoints: ['agent/src/main.ts'],
  bundle: true,
  write: false,
  platform: 'node',
  // The SDK's ES module builds tree-shake down to the commands used; its CommonJS builds do not.
  mainFields: ['module', 'main'],
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const built = result.outputFiles[0]?.text;
if (built === undefined) throw new Error('esbuild produced no output');
// The SDK imports some Node built-ins dynamically. A script compiled from V8's code cache cannot
// call import() (Node loses its dynamic-import callback), so they become require() calls.
const source = built.replace(/\bimport\(("node:[a-z_/]+")\)/g, 'Promise.resolve(require($1))');
if (/\bimport\(/.test(source))
  throw new Error('the bundle still calls import(): see build-agent.mjs');
// The cache file is named by the source's hash: V8 itself checks only the source's length.
const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
const launcher = await readFile('agent/launcher.mjs', 'utf8');
// Whatever quotes the formatter gave the placeholder.
const marker = /const BUNDLE = \{ source: (['"])\1, hash: (['"])\2 \};/;
if (!marker.test(launcher)) throw new Error('agent/launcher.mjs lacks its BUNDLE placeholder');
const text = launcher.replace(
  marker,
  () => `const BUNDLE = { source: ${JSON.stringify(source)}, hash: ${JSON.stringify(hash)} };`,
);
await writeFile(outfile, text);
await chmod(outfile, 0o755);
const { size } = await stat(outfile);
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`built ${outfile}: ${(size / 1024).toFixed(0)} KiB from ${inputs} modules`);
