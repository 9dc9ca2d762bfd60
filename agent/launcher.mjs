#!/usr/bin/env node
// eip-failover: the agent (a CommonJS bundle, embedded below by scripts/build-agent.mjs) and a
// launcher that compiles it with a V8 code cache, so that each keepalived hook skips compiling it.
//
// The cache lives in EIP_FAILOVER_CACHE_DIR (default /var/cache/eip-failover; empty: no cache),
// used only when that directory belongs to this user or root and nobody else may write to it:
// V8 runs cached code as it finds it. The first run there writes the cache, on exit. Without a
// usable directory the agent runs the same, only slower to start.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const BUNDLE = { source: '', hash: '' };

const filename = fileURLToPath(import.meta.url);
const cacheDir = process.env.EIP_FAILOVER_CACHE_DIR ?? '/var/cache/eip-failover';

function trusted(dir) {
  if (dir === '') return false;
  try {
    const s = statSync(dir);
    const uid = process.getuid?.() ?? -1;
    return s.isDirectory() && (s.uid === uid || s.uid === 0) && (s.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

const cacheFile = trusted(cacheDir)
  ? join(cacheDir, `eip-failover-${BUNDLE.hash}-${process.version}-${process.arch}.v8cache`)
  : undefined;
let cachedData;
if (cacheFile !== undefined) {
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // first run here: written on exit
  }
}
const script = new Script(
  `(function (exports, require, module, __filename, __dirname) {${BUNDLE.source}\n})`,
  {
    filename,
    ...(cachedData ? { cachedData } : {}),
  },
);
if (process.env.EIP_FAILOVER_CACHE_DEBUG === '1') {
  process.stderr.write(
    `eip-failover: code cache ${cacheFile ?? 'off'}: ${cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}\n`,
  );
}
if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
  // On exit, so the cache also holds the functions this run compiled lazily.
  process.once('exit', () => {
    const tmp = `${cacheFile}.${process.pid}`;
    try {
      writeFileSync(tmp, script.createCachedData(), { mode: 0o640 });
      renameSync(tmp, cacheFile);
    } catch {
      // a cache is an optimisation: never a reason to fail
    }
  });
}
const module = { exports: {} };
script.runInThisContext()(
  module.exports,
  createRequire(import.meta.url),
  module,
  filename,
  dirname(filename),
);
