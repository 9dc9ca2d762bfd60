import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../agent/src/config.js';
import {
  configTest,
  hostInterface,
  type Mode,
  type PlaybookRun,
  renderPair,
  run,
  sampleOutputs,
  scriptUser,
  stackName,
  tree,
  writeOutputs,
} from './helpers.js';

// The role's config tasks, run by ansible-playbook with a local connection, render both nodes of a
// sample outputs file into a temp directory: what keepalived and the agent would read on the pair.

/** The keys the agent accepts: rendering anything else would stop every hook with exit 2. */
const AGENT_KEYS = [...CONFIG_KEYS];
const NODES = ['primary', 'secondary'] as const;

/** What every node directory holds, relative to it (the role writes nothing else). */
const NODE_TREE = [
  'etc',
  'etc/eip-failover',
  'etc/eip-failover/config.json',
  'etc/keepalived',
  'etc/keepalived/keepalived.conf',
  'etc/logrotate.d',
  'etc/logrotate.d/eip-failover',
  'etc/sysctl.d',
  'etc/sysctl.d/60-eip-failover.conf',
  'etc/systemd',
  'etc/systemd/system',
  'etc/systemd/system/eip-failover-reconcile.service',
  'etc/systemd/system/eip-failover-reconcile.timer',
  'etc/tmpfiles.d',
  'etc/tmpfiles.d/eip-failover.conf',
  'run',
  'run/eip-failover',
  'usr',
  'usr/local',
  'usr/local/sbin',
  'usr/local/sbin/keepalived-config-test',
  'var',
  'var/cache',
  'var/cache/eip-failover',
  'var/log',
  'var/log/eip-failover',
];

/** The agent config schema of DESIGN.md, as the agent enforces it (unknown keys are errors). */
function expectAgentSchema(config: Record<string, unknown>): void {
  for (const key of Object.keys(config)) expect(AGENT_KEYS).toContain(key);
  const addresses = config.addresses as Record<string, unknown>[];
  expect(Array.isArray(addresses) && addresses.length > 0).toBe(true);
  for (const address of addresses) {
    for (const key of Object.keys(address)) expect(['allocationId', 'privateIp']).toContain(key);
    expect(address.allocationId).toMatch(/^eipalloc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/);
    if ('privateIp' in address) expect(address.privateIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  }
  if ('interface' in config) expect(config.interface).toMatch(/^[A-Za-z0-9_.:-]{1,15}$/);
  if ('region' in config) expect(config.region).toMatch(/^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/);
  expect(Number.isInteger(config.deadlineSeconds)).toBe(true);
  expect(config.stateDir).toMatch(/^\//);
  expect(config.logFile).toMatch(/^\//);
  expect(typeof config.reclaimFromPeer).toBe('boolean');
}

function expectSuccess(result: PlaybookRun, changed: (n: number) => void): void {
  if (result.status !== 0)
    throw new Error(`ansible-playbook failed:\n${result.stdout}\n${result.stderr}`);
  expect(Object.keys(result.recap).sort()).toEqual([...NODES]);
  for (const node of NODES) {
    expect(result.recap[node]?.failed).toBe(0);
    changed(result.recap[node]?.changed ?? -1);
  }
}

describe.each<Mode>(['same-subnet', 'cross-az'])('the role renders a %s pair', (mode) => {
  const outputs = sampleOutputs(mode);
  const stack = outputs[stackName] ?? {};
  const ips = { primary: stack.PrimaryPrivateIp, secondary: stack.SecondaryPrivateIp };
  const peer = { primary: 'secondary', secondary: 'primary' } as const;
  const iface = hostInterface();
  let root: string;
  let first: PlaybookRun;
  let second: PlaybookRun;

  const read = (node: string, path: string) => readFileSync(join(root, node, path), 'utf8');
  const keepalivedConf = (node: string) => read(node, 'etc/keepalived/keepalived.conf');

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), `eip-render-${mode}-`));
    const outputsFile = writeOutputs(root, outputs);
    // The notify hooks here; hook-mode.test.ts covers the FIFO mode, the default.
    first = renderPair(outputsFile, root, { keepalived_eip_hook_mode: 'notify' });
    second = renderPair(outputsFile, root, { keepalived_eip_hook_mode: 'notify' });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('runs without failure and changes both nodes the first time', () => {
    expectSuccess(first, (changed) => expect(changed).toBeGreaterThan(0));
  });

  it('changes nothing the second time', () => {
    expectSuccess(second, (changed) => expect(changed).toBe(0));
  });

  it('writes every file under the node directories and nowhere else in the temp directory', () => {
    expect(tree(root, ['.ansible']).filter((p) => !p.includes('/'))).toEqual([
      'cdk-outputs.json',
      ...NODES,
    ]);
    for (const node of NODES) expect(tree(join(root, node))).toEqual(NODE_TREE);
  });

  it.each(NODES)(
    'gives %s tight modes: nothing others can write; keepalived.conf 0640, log dir 0750',
    (node) => {
      const mode = (path: string) => statSync(join(root, node, path)).mode & 0o777;
      for (const path of NODE_TREE)
        expect(mode(path) & 0o022, `${path} is group/other-writable`).toBe(0);
      // keepalived.conf names the hooks keepalived runs: root's alone to change, not world-readable.
      expect(mode('etc/keepalived/keepalived.conf')).toBe(0o640);
      // The agent's log: the script user writes it, others cannot read it.
      expect(mode('var/log/eip-failover')).toBe(0o750);
      // The code cache: V8 runs what it finds there, so only the script user may write to it.
      expect(mode('var/cache/eip-failover')).toBe(0o750);
      // The agent's config holds ids and paths, no secret: world-readable so `status` works for operators.
      expect(mode('etc/eip-failover/config.json')).toBe(0o644);
    },
  );

  it.each(NODES)('names %s as unicast source and the other node as its peer', (node) => {
    const conf = keepalivedConf(node);
    expect(conf).toContain(`unicast_src_ip ${ips[node]}\n`);
    expect(conf).toMatch(
      new RegExp(`unicast_peer \\{\\s*${ips[peer[node]]?.replaceAll('.', '\\.')}\\s*\\}`),
    );
    expect(conf).toContain('unicast_fault_no_peer');
    expect(conf).toMatch(/^\s*state BACKUP$/m);
    expect(conf).toMatch(new RegExp(`^\\s*priority ${node === 'primary' ? 150 : 100}$`, 'm'));
    expect(conf).toMatch(/^\s*nopreempt$/m);
    expect(conf).toMatch(new RegExp(`^\\s*interface ${iface}$`, 'm'));
  });

  it.each(NODES)('gives %s hooks that call the agent with its own config', (node) => {
    const conf = keepalivedConf(node);
    const agent = join(root, node, 'usr/local/bin/eip-failover');
    const config = `--config ${join(root, node, 'etc/eip-failover/config.json')}`;
    expect(conf).toContain(`notify_master "${agent} takeover ${config}"`);
    expect(conf).toContain(`notify_backup "${agent} release BACKUP ${config}"`);
    expect(conf).toContain(`notify_fault "${agent} release FAULT ${config}"`);
    expect(conf).toContain(`notify_stop "${agent} release STOP ${config}"`);
    expect(conf).toContain(`notify_master_rx_lower_pri "${agent} reconcile ${config}"`);
    const { user, group } = scriptUser();
    expect(conf).toContain('enable_script_security');
    expect(conf).toContain(`script_user ${user} ${group}`);
  });

  it.each(NODES)('gives %s a health check of the local load balancer', (node) => {
    const conf = keepalivedConf(node);
    expect(conf).toMatch(
      /vrrp_script chk_load_balancer \{\s*script "\/usr\/bin\/curl [^"]*http:\/\/127\.0\.0\.1:80\/"\s*interval 2\s*timeout 2\s*fall 2\s*rise 2\s*weight 0\s*\}/,
    );
    expect(conf).toMatch(/track_script \{\s*chk_load_balancer\s*\}/);
  });

  it.each(NODES)(`gives %s ${mode === 'same-subnet' ? 'the VIP' : 'no VIP'}`, (node) => {
    const conf = keepalivedConf(node);
    if (mode === 'same-subnet') {
      expect(conf).toMatch(
        new RegExp(`virtual_ipaddress \\{\\s*10\\.0\\.0\\.50/24 dev ${iface}\\s*\\}`),
      );
    } else {
      expect(conf).not.toContain('virtual_ipaddress');
    }
  });

  it.each(NODES)(
    "renders a keepalived.conf for %s that passes keepalived's config test",
    (node) => {
      const path = join(root, node, 'etc/keepalived/keepalived.conf');
      const result = run(configTest, [path]);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      // And keepalived itself reports no line-numbered problem.
      expect(run('keepalived', ['--config-test', '-f', path]).stderr).not.toMatch(/Line \d+\)/);
    },
  );

  it.each(NODES)('renders an agent config for %s that parses and matches the schema', (node) => {
    const config = JSON.parse(read(node, 'etc/eip-failover/config.json')) as Record<
      string,
      unknown
    >;
    expectAgentSchema(config);
    const address =
      mode === 'same-subnet'
        ? { allocationId: stack.AllocationId, privateIp: stack.Vip }
        : { allocationId: stack.AllocationId };
    expect(config).toEqual({
      addresses: [address],
      interface: iface,
      region: stack.Region,
      deadlineSeconds: 60,
      stateDir: join(root, node, 'run/eip-failover'),
      logFile: join(root, node, 'var/log/eip-failover/agent.log'),
      // Only the higher-priority node takes an address back from its peer.
      reclaimFromPeer: node === 'primary',
    });
  });

  it.each(NODES)("makes %s's state and log directories the script user's", (node) => {
    const uid = Number(run('id', ['-u', scriptUser().user]).stdout.trim());
    expect(statSync(join(root, node, 'run/eip-failover')).uid).toBe(uid);
    expect(statSync(join(root, node, 'var/log/eip-failover')).uid).toBe(uid);
    expect(statSync(join(root, node, 'var/cache/eip-failover')).uid).toBe(uid);
    // Parents the role creates belong to whoever ran it, not to the script user.
    expect(statSync(join(root, node, 'var/log')).uid).toBe(process.getuid?.());
  });

  it.each(NODES)('renders logrotate, the reconcile timer and the sysctl for %s', (node) => {
    const logs = join(root, node, 'var/log/eip-failover');
    expect(read(node, 'etc/logrotate.d/eip-failover')).toContain(`${logs}/*.log {`);
    const service = read(node, 'etc/systemd/system/eip-failover-reconcile.service');
    expect(service).toContain(
      `ExecStart=${join(root, node, 'usr/local/bin/eip-failover')} reconcile --config ${join(root, node, 'etc/eip-failover/config.json')}`,
    );
    expect(service).toContain(`User=${scriptUser().user}`);
    // A round that a VRRP transition overtook (exit 3) is not a failed unit.
    expect(service).toMatch(/^SuccessExitStatus=3$/m);
    expect(read(node, 'etc/systemd/system/eip-failover-reconcile.timer')).toContain(
      'OnUnitActiveSec=1min',
    );
    expect(read(node, 'etc/sysctl.d/60-eip-failover.conf')).toMatch(
      /^net\.ipv4\.ip_nonlocal_bind = 1$/m,
    );
  });
});

describe('the role with non-default choices', () => {
  let root: string;
  let outputsFile: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'eip-render-options-'));
    outputsFile = writeOutputs(root, sampleOutputs('same-subnet'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("renders preempt_delay, VRRPv3 with a sub-second advert_int and the drill's choices", () => {
    const dir = join(root, 'drill');
    const result = renderPair(outputsFile, dir, {
      // The drill's interfaces live in network namespaces, not on the host that renders.
      keepalived_eip_interface: 'veth-node0',
      keepalived_eip_validate_allow_missing_interface: true,
      keepalived_eip_nopreempt: false,
      keepalived_eip_preempt_delay: 10,
      keepalived_eip_vrrp_version: 3,
      keepalived_eip_advert_int: 0.5,
      keepalived_eip_agent_command: '/opt/drill/eip-failover-wrapper',
      keepalived_eip_check_script: '/bin/true',
      keepalived_eip_nonlocal_bind: false,
      keepalived_eip_hook_mode: 'notify',
    });
    expectSuccess(result, (changed) => expect(changed).toBeGreaterThan(0));
    const conf = readFileSync(join(dir, 'primary/etc/keepalived/keepalived.conf'), 'utf8');
    expect(conf).toMatch(/^\s*vrrp_version 3$/m);
    expect(conf).toMatch(/^\s*advert_int 0\.5$/m);
    expect(conf).toMatch(/^\s*preempt_delay 10$/m);
    expect(conf).not.toContain('nopreempt');
    expect(conf).toContain('notify_master "/opt/drill/eip-failover-wrapper takeover --config');
    expect(conf).toContain('script "/bin/true"');
    expect(conf).toMatch(/^\s*interface veth-node0$/m);
    expect(tree(join(dir, 'primary'))).not.toContain('etc/sysctl.d/60-eip-failover.conf');
  });

  it('refuses a sub-second advert_int with VRRPv2 before writing anything', () => {
    const dir = join(root, 'v2-fast');
    const result = renderPair(outputsFile, dir, { keepalived_eip_advert_int: 0.5 });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain('sub-second needs keepalived_eip_vrrp_version 3');
    expect(tree(dir, ['.ansible'])).toEqual([]);
  });

  it('stops at validation when keepalived rejects the config, leaving no keepalived.conf', () => {
    const dir = join(root, 'bad-interface');
    const result = renderPair(outputsFile, dir, { keepalived_eip_interface: 'nosuch0' });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain('failed to validate');
    expect(result.stdout).toContain('interface nosuch0');
    expect(tree(join(dir, 'primary'))).not.toContain('etc/keepalived/keepalived.conf');
  });
});
