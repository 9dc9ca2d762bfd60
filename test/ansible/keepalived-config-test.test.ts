import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configTest, hostInterface, run, scriptUser } from './helpers.js';

// Each case pairs what keepalived 2.2.7 itself answers (the quirk) with what the wrapper makes of it.
describe('keepalived-config-test', () => {
  let dir: string;
  let iface: string;

  interface Options {
    readonly scriptUser?: string;
    readonly vip?: boolean;
    readonly vrid?: number;
    readonly extra?: string;
    readonly iface?: string;
  }

  function conf(name: string, options: Options = {}): string {
    const nic = options.iface ?? iface;
    const security =
      options.scriptUser === undefined
        ? ''
        : `  enable_script_security\n  script_user ${options.scriptUser}\n`;
    const hook =
      options.scriptUser === undefined ? '' : `  notify_master "${join(dir, 'hook')} takeover"\n`;
    const vip =
      options.vip === false ? '' : `  virtual_ipaddress {\n    10.0.0.50/24 dev ${nic}\n  }\n`;
    const path = join(dir, `${name}.conf`);
    writeFileSync(
      path,
      `global_defs {\n  router_id test\n${security}}\n` +
        `vrrp_instance VI_1 {\n  state BACKUP\n  interface ${nic}\n` +
        `  virtual_router_id ${options.vrid ?? 51}\n  priority 100\n  advert_int 1\n` +
        `  unicast_src_ip 10.0.0.11\n  unicast_peer {\n    10.0.0.12\n  }\n` +
        `${options.extra ?? ''}${vip}${hook}}\n`,
    );
    return path;
  }

  const keepalived = (path: string) => run('keepalived', ['--config-test', '-f', path]);
  const wrapper = (...args: string[]) => run(configTest, args);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'keepalived-config-test-'));
    writeFileSync(join(dir, 'hook'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(dir, 'hook'), 0o755);
    iface = hostInterface();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes a valid config, as keepalived does', () => {
    const path = conf('valid');
    expect(keepalived(path).status).toBe(0);
    const result = wrapper(path);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('passes a valid config whose scripts run as a non-root script_user (keepalived: 143)', () => {
    const { user } = scriptUser();
    const path = conf('script-security', { scriptUser: user === 'root' ? 'nobody' : user });
    const raw = keepalived(path);
    expect(raw.signal).toBe('SIGTERM');
    expect(wrapper(path).status).toBe(0);
  });

  it('passes a config without a VIP, as a cross-az pair has (keepalived: 5)', () => {
    const path = conf('no-vip', { vip: false });
    const raw = keepalived(path);
    expect(raw.status).toBe(5);
    expect(raw.stderr).toContain('No VIP specified');
    expect(wrapper(path).status).toBe(0);
  });

  it('fails a file that does not exist (keepalived: 0)', () => {
    const path = join(dir, 'missing.conf');
    const raw = keepalived(path);
    expect(raw.status).toBe(0);
    expect(raw.stderr).toContain('Config files missing');
    const result = wrapper(path);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('no such readable file');
  });

  it('fails an empty file (keepalived: 0)', () => {
    const path = join(dir, 'empty.conf');
    writeFileSync(path, '');
    expect(keepalived(path).status).toBe(0);
    expect(wrapper(path).status).toBe(1);
  });

  it('fails an unknown keyword and names it on stderr', () => {
    const path = conf('unknown-keyword', { extra: '  bogus_keyword 1\n' });
    expect(keepalived(path).status).toBe(5);
    const result = wrapper(path);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /\(.*unknown-keyword\.conf: Line \d+\) Unknown keyword 'bogus_keyword'/,
    );
  });

  it('fails an unknown keyword even when keepalived exits 143 under script security', () => {
    const path = conf('unknown-keyword-143', {
      scriptUser: 'nobody',
      extra: '  bogus_keyword 1\n',
    });
    const raw = keepalived(path);
    expect(raw.signal).toBe('SIGTERM');
    const result = wrapper(path);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("Unknown keyword 'bogus_keyword'");
  });

  it('fails a virtual router id out of range', () => {
    const path = conf('vrid', { vrid: 300 });
    expect(keepalived(path).status).toBe(5);
    const result = wrapper(path);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("VRID '300' not valid");
  });

  it('fails a VIP-less config that also has a real error (exit 5 is not always the VIP warning)', () => {
    const path = conf('no-vip-and-error', { vip: false, vrid: 0 });
    expect(keepalived(path).status).toBe(5);
    expect(wrapper(path).status).toBe(1);
  });

  it('fails a script_user that does not exist', () => {
    const path = conf('no-such-user', { scriptUser: 'no-such-user-eip' });
    const result = wrapper(path);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Error setting global script uid/gid');
  });

  it('fails an interface this host lacks, unless told to accept it', () => {
    const path = conf('missing-interface', { iface: 'nosuch0' });
    expect(keepalived(path).status).toBe(5);
    const strict = wrapper(path);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('interface nosuch0');
    expect(wrapper('--allow-missing-interface', path).status).toBe(0);
  });

  it('accepts no other interface problem with --allow-missing-interface', () => {
    const path = conf('missing-interface-and-error', {
      iface: 'nosuch0',
      extra: '  bogus_keyword 1\n',
    });
    expect(wrapper('--allow-missing-interface', path).status).toBe(1);
  });

  it('fails when keepalived cannot be run', () => {
    const result = run(configTest, [conf('valid-again')], {
      KEEPALIVED: join(dir, 'no-keepalived'),
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('cannot run');
  });

  it('rejects bad usage with exit 2', () => {
    expect(wrapper().status).toBe(2);
    expect(wrapper('--bogus', 'x').status).toBe(2);
    expect(wrapper('a', 'b').status).toBe(2);
  });
});
