import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The bundle's launcher: a V8 code cache in a directory only the agent's user may write. */
const BUNDLE = resolve(import.meta.dirname, '../../agent/dist/eip-failover.mjs');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eip-failover-cache-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function version(cacheDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BUNDLE, '--version'],
      { env: { PATH: process.env.PATH ?? '', EIP_FAILOVER_CACHE_DIR: cacheDir } },
      (err, stdout, stderr) =>
        done({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

async function cacheDir(name: string, mode: number): Promise<string> {
  const path = join(dir, name);
  await mkdir(path);
  await chmod(path, mode);
  return path;
}

describe('the V8 code cache', () => {
  it('the first run writes it; later runs use it and leave it alone', async () => {
    const cache = await cacheDir('trusted', 0o750);
    const first = await version(cache);
    expect(first).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const files = await readdir(cache);
    expect(files).toEqual([
      expect.stringMatching(/^eip-failover-[0-9a-f]{16}-v\d+\.\d+\.\d+-\w+\.v8cache$/),
    ]);
    const file = join(cache, files[0] as string);
    const written = await stat(file);
    expect(written.size).toBeGreaterThan(100_000);
    expect(written.mode & 0o777).toBe(0o640);
    const second = await version(cache);
    expect(second).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect((await stat(file)).mtimeMs).toBe(written.mtimeMs);
  });

  it('a cache V8 rejects (corrupt, or from another build) is replaced, and the run still works', async () => {
    const cache = await cacheDir('corrupt', 0o750);
    await version(cache);
    const [name] = await readdir(cache);
    const file = join(cache, name as string);
    await writeFile(file, Buffer.alloc(4096, 7));
    const run = await version(cache);
    expect(run).toMatchObject({ code: 0, stdout: '0.1.0\n', stderr: '' });
    expect((await readFile(file)).equals(Buffer.alloc(4096, 7))).toBe(false);
  });

  it('a directory others may write to is not used: nothing is read from it or written to it', async () => {
    const cache = await cacheDir('world-writable', 0o777);
    const run = await version(cache);
    expect(run).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect(await readdir(cache)).toEqual([]);
  });

  it('no directory, or an empty setting: runs without a cache', async () => {
    expect(await version(join(dir, 'absent'))).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect(await version('')).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});
