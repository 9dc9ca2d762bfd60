import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configTest,
  type Mode,
  type PlaybookRun,
  renderPair,
  run,
  sampleOutputs,
  scriptUser,
  tree,
  writeOutputs,
} from './helpers.js';

// keepalived_eip_hook_mode: fifo (the default) or notify (render.test.ts covers it), where one
// long-lived agent reads keepalived's notify FIFO and the reconcile unit first runs the guard that
// restarts a dead reader. Rendered like render.test.ts does, for both topologies.

const NODES = ['primary', 'secondary'] as const;

function expectSuccess(result: PlaybookRun): void {
  if (result.status !== 0)
    throw new Error(`ansible-playbook failed:\n${result.stdout}\n${result.stderr}`);
  for (const node of NODES) expect(result.recap[node]?.failed).toBe(0);
}

describe.each<Mode>(['same-subnet', 'cross-az'])('the role in fifo hook mode, %s', (mode) => {
  let root: string;
  let outputsFile: string;
  let fifoRun: PlaybookRun;
  let again: PlaybookRun;
  const read = (node: string, path: string) => readFileSync(join(root, node, path), 'utf8');
  const at = (node: string, path: string) => join(root, node, path);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), `eip-hook-mode-${mode}-`));
    outputsFile = writeOutputs(root, sampleOutputs(mode));
    // No hook-mode variable: FIFO is the default, since it passed every drill scenario.
    fifoRun = renderPair(outputsFile, root);
    again = renderPair(outputsFile, root);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('renders both nodes, and nothing changes the second time', () => {
    expectSuccess(fifoRun);
    expectSuccess(again);
    for (const node of NODES) expect(again.recap[node]?.changed).toBe(0);
  });

  it.each(NODES)(
    'gives %s a FIFO reader instead of the notify hooks, keeping the rx_lower_pri reconcile',
    (node) => {
      const conf = read(node, 'etc/keepalived/keepalived.conf');
      const agent = at(node, 'usr/local/bin/eip-failover');
      const config = at(node, 'etc/eip-failover/config.json');
      const globalDefs = /global_defs \{([\s\S]*?)\n\}/.exec(conf)?.[1] ?? '';
      expect(globalDefs).toMatch(
        new RegExp(
          `^\\s*vrrp_notify_fifo ${at(node, 'run/eip-failover-notify/keepalived.fifo')}$`,
          'm',
        ),
      );
      expect(globalDefs).toContain(
        `vrrp_notify_fifo_script "${agent} fifo --config ${config} --instance VI_EIP"`,
      );
      expect(globalDefs).toMatch(/^\s*fifo_write_vrrp_states_on_reload$/m);
      for (const hook of ['notify_master ', 'notify_backup', 'notify_fault', 'notify_stop']) {
        expect(conf).not.toContain(hook);
      }
      expect(conf).toContain(`notify_master_rx_lower_pri "${agent} reconcile --config ${config}"`);
    },
  );

  it.each(NODES)(
    "renders a keepalived.conf for %s that passes keepalived's config test",
    (node) => {
      const path = at(node, 'etc/keepalived/keepalived.conf');
      const result = run(configTest, [path]);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(run('keepalived', ['--config-test', '-f', path]).stderr).not.toMatch(/Line \d+\)/);
    },
  );

  it.each(NODES)(
    'gives %s a root-owned FIFO directory, the guard, and runs the guard before reconcile',
    (node) => {
      const dir = statSync(at(node, 'run/eip-failover-notify'));
      expect(dir.isDirectory()).toBe(true);
      expect(dir.uid).toBe(0);
      expect(dir.mode & 0o777).toBe(0o755);
      const guard = statSync(at(node, 'usr/local/sbin/eip-failover-fifo-guard'));
      expect(guard.mode & 0o777).toBe(0o755);
      expect(guard.uid).toBe(0);
      const service = read(node, 'etc/systemd/system/eip-failover-reconcile.service');
      const pre = `ExecStartPre=+${at(node, 'usr/local/sbin/eip-failover-fifo-guard')} --fifo ${at(node, 'run/eip-failover-notify/keepalived.fifo')} --instance VI_EIP --pid-file /run/keepalived.pid`;
      expect(service).toContain(pre);
      // The guard runs before the agent: systemd runs ExecStartPre lines first, and skips
      // ExecStart when one fails.
      expect(service.indexOf(pre)).toBeLessThan(service.indexOf('ExecStart='));
      expect(service).toContain(`User=${scriptUser().user}`);
      expect(read(node, 'etc/tmpfiles.d/eip-failover.conf')).toMatch(
        new RegExp(`^d ${at(node, 'run/eip-failover-notify')} 0755 root root -$`, 'm'),
      );
    },
  );

  it('goes back to the notify hooks and removes the guard when the mode is notify again', () => {
    const back = renderPair(outputsFile, root, { keepalived_eip_hook_mode: 'notify' });
    expectSuccess(back);
    for (const node of NODES) {
      const conf = read(node, 'etc/keepalived/keepalived.conf');
      expect(conf).not.toContain('vrrp_notify_fifo');
      expect(conf).toContain('notify_master "');
      expect(tree(at(node, 'usr/local/sbin'))).toEqual(['keepalived-config-test']);
      const service = read(node, 'etc/systemd/system/eip-failover-reconcile.service');
      expect(service).not.toContain('ExecStartPre');
      expect(read(node, 'etc/tmpfiles.d/eip-failover.conf')).not.toContain('eip-failover-notify');
    }
  });
});

describe('the hook mode variables are checked before anything is written', () => {
  let root: string;
  let outputsFile: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'eip-hook-mode-bad-'));
    outputsFile = writeOutputs(root, sampleOutputs('same-subnet'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('refuses a hook mode other than notify or fifo', () => {
    const dir = join(root, 'typo');
    const result = renderPair(outputsFile, dir, { keepalived_eip_hook_mode: 'fifos' });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain("keepalived_eip_hook_mode is 'fifos'");
    expect(result.stdout).toContain('it must be notify');
    expect(tree(dir, ['.ansible'])).toEqual([]);
  });

  it("refuses a FIFO in the script user's state directory", () => {
    const dir = join(root, 'fifo-in-state-dir');
    const result = renderPair(outputsFile, dir, {
      keepalived_eip_hook_mode: 'fifo',
      keepalived_eip_fifo_path: '{{ keepalived_eip_agent_state_dir }}/keepalived.fifo',
    });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain('needs a directory of');
    expect(tree(dir, ['.ansible'])).toEqual([]);
  });
});
