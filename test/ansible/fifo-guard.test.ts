import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, run } from './helpers.js';

// eip-failover-fifo-guard against real keepalived 2.2.7 in a network namespace, with a trivial
// FIFO reader that logs what it gets. The first cases pin keepalived's own behaviour the guard is
// built on (README, "The FIFO hook mode"); a keepalived that behaves otherwise fails them.

const guard = join(repoRoot, 'ansible/roles/keepalived_eip/files/eip-failover-fifo-guard');
const ns = `eipguard${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(process.getuid?.() !== 0)('eip-failover-fifo-guard with keepalived', () => {
  let dir: string;
  let keepalived: ChildProcess | undefined;
  let log = '';
  const fifo = () => join(dir, 'fifo/keepalived.fifo');
  const pidFile = () => join(dir, 'keepalived.pid');
  const readerLog = () => readFileSync(join(dir, 'out/reader.log'), 'utf8');
  const events = () =>
    readerLog()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));
  /** The pids of reader processes that started, in order. */
  const readers = () => events().filter((e) => e[0] === 'START');
  const linesOf = (pid: string) =>
    events()
      .filter((e) => e[0] === 'LINE' && e[1] === pid)
      .map((e) => e.slice(2).join(' '));
  const lastReader = () => readers().at(-1)?.[1] ?? '';
  const alive = (pid: string) => existsSync(`/proc/${pid}`) && !isZombie(pid);
  const runGuard = () =>
    run(guard, ['--fifo', fifo(), '--instance', 'VI_T', '--pid-file', pidFile()]);
  const setTrack = (value: number) => writeFileSync(join(dir, 'track'), `${value}\n`);
  const vrrp = (state: string, since: number) =>
    until(`keepalived entering ${state}`, () =>
      log.slice(since).includes(`(VI_T) Entering ${state} STATE`) ? true : undefined,
    );

  beforeAll(async () => {
    // keepalived's script security wants every directory on the reader's path root-only writable.
    dir = mkdtempSync('/run/eip-fifo-guard-test-');
    chmodSync(dir, 0o755);
    const nobody = Number(run('id', ['-u', 'nobody']).stdout.trim());
    for (const sub of ['fifo', 'tmp', 'out']) mkdirSync(join(dir, sub), { mode: 0o755 });
    chownSync(join(dir, 'out'), nobody, -1);
    writeFileSync(
      join(dir, 'reader'),
      [
        '#!/bin/sh',
        `log=${dir}/out/reader.log`,
        'for last; do :; done',
        'echo "START $$ uid=$(id -u) argc=$# args=$*" >>"$log"',
        'while IFS= read -r line; do echo "LINE $$ $line" >>"$log"; done <"$last"',
        'echo "EOF $$" >>"$log"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    writeFileSync(join(dir, 'out/reader.log'), '');
    chownSync(join(dir, 'out/reader.log'), nobody, -1);
    setTrack(0);
    writeFileSync(
      join(dir, 'keepalived.conf'),
      `global_defs {
  router_id guard-test
  enable_script_security
  script_user nobody
  vrrp_notify_fifo ${dir}/fifo/keepalived.fifo
  vrrp_notify_fifo_script "${dir}/reader extra"
  fifo_write_vrrp_states_on_reload
}
track_file tf {
  file ${dir}/track
  weight 0
}
vrrp_instance VI_T {
  state BACKUP
  interface g0
  virtual_router_id 77
  priority 150
  advert_int 1
  nopreempt
  unicast_src_ip 10.77.0.1
  unicast_peer {
    10.77.0.2
  }
  track_file {
    tf
  }
}
`,
    );
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'add', 'g0', 'type', 'veth', 'peer', 'name', 'g1']);
    run('ip', ['-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'g0']);
    run('ip', ['-n', ns, 'link', 'set', 'g0', 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'g1', 'up']);
    keepalived = spawn(
      'ip',
      [
        ...['netns', 'exec', ns, 'keepalived', '--dont-fork', '--log-console', '--vrrp'],
        ...['-f', join(dir, 'keepalived.conf'), '-p', pidFile(), '-r', join(dir, 'vrrp.pid')],
      ],
      { env: { ...process.env, TMPDIR: join(dir, 'tmp') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    keepalived.stdout?.on('data', (d: Buffer) => {
      log += d.toString();
    });
    keepalived.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
    });
    await vrrp('MASTER', 0);
  }, 30_000);

  afterAll(async () => {
    if (keepalived && keepalived.exitCode === null) {
      keepalived.kill('SIGTERM');
      await new Promise((r) => keepalived?.once('exit', r));
    }
    run('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keepalived starts the reader as the script user, the FIFO path appended to its arguments', async () => {
    const start = await until('the reader', () => readers()[0]);
    const uid = run('id', ['-u', 'nobody']).stdout.trim();
    expect(start.slice(2)).toEqual([`uid=${uid}`, 'argc=2', 'args=extra', fifo()]);
    // keepalived creates the FIFO 0600 for the script user; the reader can open it.
    expect(run('stat', ['-c', '%F %U %a', fifo()]).stdout.trim()).toBe('fifo nobody 600');
    const pid = start[1] ?? '';
    const lines = await until('BACKUP then MASTER', () =>
      linesOf(pid).length >= 2 ? linesOf(pid) : undefined,
    );
    expect(lines).toEqual(['INSTANCE "VI_T" BACKUP 150', 'INSTANCE "VI_T" MASTER 150']);
  });

  it('with a reader on the FIFO the guard does nothing and exits 0', async () => {
    const before = log.length;
    const result = runGuard();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    await sleep(500);
    expect(log.slice(before)).not.toContain('Reloading');
  });

  it('keepalived does not restart a reader that died, and does not block on the FIFO', async () => {
    const pid = lastReader();
    process.kill(Number(pid), 'SIGKILL');
    await until('keepalived noticing', () =>
      log.includes('vrrp notify fifo script terminated') ? true : undefined,
    );
    const since = log.length;
    setTrack(1);
    await vrrp('FAULT', since);
    await sleep(3_000);
    expect(readers()).toHaveLength(1);
    expect(alive(pid)).toBe(false);
  });

  it('the guard reloads keepalived, whose new reader is told FAULT by keepalived itself', async () => {
    const before = log.length;
    const result = runGuard();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`no process reads ${fifo()}`);
    expect(result.stderr).toContain('keepalived says VI_T is FAULT');
    expect(result.stderr).not.toContain('written to the FIFO');
    await until('keepalived reloading', () =>
      log.slice(before).includes('Reloading') ? true : undefined,
    );
    expect(readers()).toHaveLength(2);
    const pid = lastReader();
    expect(await until('FAULT', () => linesOf(pid)[0])).toBe('INSTANCE "VI_T" FAULT 150');
    // And it goes on as usual: healthy again, BACKUP, then MASTER.
    const since = log.length;
    setTrack(0);
    await vrrp('MASTER', since);
    const lines = await until('BACKUP, MASTER', () =>
      linesOf(pid).length >= 3 ? linesOf(pid) : undefined,
    );
    expect(lines).toEqual([
      'INSTANCE "VI_T" FAULT 150',
      'INSTANCE "VI_T" BACKUP 150',
      'INSTANCE "VI_T" MASTER 150',
    ]);
  });

  it('a reader that died under a MASTER is replaced and told MASTER by the guard', async () => {
    const old = lastReader();
    process.kill(Number(old), 'SIGKILL');
    await until('the reader gone', () => (alive(old) ? undefined : true));
    const result = runGuard();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('keepalived says VI_T is MASTER (written to the FIFO)');
    const pid = lastReader();
    expect(pid).not.toBe(old);
    expect(await until('MASTER', () => linesOf(pid)[0])).toBe('INSTANCE "VI_T" MASTER 150');
    await sleep(500);
    expect(linesOf(pid)).toHaveLength(1);
    expect(runGuard().status).toBe(0);
  });

  it('a reload (SIGHUP) ends the reader and starts a new one, with no line for a MASTER', async () => {
    const old = lastReader();
    const count = readers().length;
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    process.kill(pid, 'SIGHUP');
    await until('a new reader', () => (readers().length > count ? true : undefined));
    await until('the old reader gone', () => (alive(old) ? undefined : true));
    await sleep(1_000);
    expect(linesOf(lastReader())).toEqual([]);
  });

  it('without keepalived there is nothing to guard: exit 0', async () => {
    keepalived?.kill('SIGTERM');
    await new Promise((r) => keepalived?.once('exit', r));
    const result = runGuard();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

function isZombie(pid: string): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
