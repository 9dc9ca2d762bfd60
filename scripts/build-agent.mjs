// Bundles the agent into one executable ESM file that runs with plain `node`, no node_modules.
import { chmod, mkdir, stat } from 'node:fs/promises';
import { build } from 'esbuild';

const outfile = 'agent/dist/eip-failover.mjs';
await mkdir('agent/dist', { recursive: true });
const result = await build({
  entryPoints: ['agent/src/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  // The SDK's ES module builds tree-shake down to the commands used; its CommonJS builds do not.
  mainFields: ['module', 'main'],
  target: 'node20',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  metafile: true,
  // Some bundled CommonJS modules call require() for Node built-ins.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: 'warning',
});
await chmod(outfile, 0o755);
const { size } = await stat(outfile);
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`built ${outfile}: ${(size / 1024).toFixed(0)} KiB from ${inputs} modules`);
