import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const configTest = join(
  repoRoot,
  'ansible/roles/keepalived_eip/files/keepalived-config-test',
);
export const inventoryScript = join(repoRoot, 'ansible/inventory/cdk_outputs.py');
export const playbook = join(repoRoot, 'ansible/site.yml');

export type Mode = 'same-subnet' | 'cross-az';
export type Outputs = Record<string, Record<string, string>>;

interface Contract {
  readonly pair: Record<string, string>;
  readonly nodes: readonly string[];
  readonly perNode: Record<string, string>;
  readonly example: Outputs;
}

export const contract = JSON.parse(
  readFileSync(join(repoRoot, 'lib/outputs-contract.json'), 'utf8'),
) as Contract;
export const stackName = Object.keys(contract.example)[0] ?? 'KeepalivedEipPair';

/** The contract's example outputs; in cross-az mode the secondary moves to another subnet and AZ. */
export function sampleOutputs(mode: Mode): Outputs {
  const stack = { ...contract.example[stackName] };
  if (mode === 'cross-az') {
    Object.assign(stack, {
      Mode: 'cross-az',
      Vip: 'none',
      SecondaryPrivateIp: '10.0.1.12',
      SecondarySubnetCidr: '10.0.1.0/24',
      SecondaryAvailabilityZone: 'eu-central-1b',
    });
  }
  return { [stackName]: stack };
}

export function writeOutputs(dir: string, outputs: Outputs): string {
  const path = join(dir, 'cdk-outputs.json');
  writeFileSync(path, JSON.stringify(outputs, null, 2));
  return path;
}

/** An interface keepalived accepts on this host: the default route's, else any but loopback. */
export function hostInterface(): string {
  const routes = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1);
  for (const line of routes) {
    const [name, destination] = line.trim().split(/\s+/);
    if (name && destination === '00000000') return name;
  }
  const other = readdirSync('/sys/class/net').find((name) => name !== 'lo');
  if (other === undefined) throw new Error('no network interface besides lo on this host');
  return other;
}

export interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(command, args, {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 240_000,
  });
  if (result.error) throw result.error;
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
  };
}

/** The user and group the hooks run as in tests: an existing unprivileged user. */
export function scriptUser(): { user: string; group: string } {
  if (process.getuid?.() !== 0) {
    const user = run('id', ['-un']).stdout.trim();
    return { user, group: run('id', ['-gn']).stdout.trim() };
  }
  return { user: 'nobody', group: run('id', ['-gn', 'nobody']).stdout.trim() };
}

export interface Recap {
  readonly ok: number;
  readonly changed: number;
  readonly failed: number;
  readonly skipped: number;
}

export interface PlaybookRun extends Run {
  readonly recap: Record<string, Recap>;
}

/**
 * Runs the playbook's config tasks for both nodes of `outputsFile` on this machine: a local
 * connection, no become, nothing that needs a real host, every path under `root/<node>`.
 */
export function renderPair(
  outputsFile: string,
  root: string,
  extraVars: Record<string, unknown> = {},
): PlaybookRun {
  const ansibleTmp = join(root, '.ansible');
  mkdirSync(ansibleTmp, { recursive: true });
  const { user, group } = scriptUser();
  const vars = {
    ansible_connection: 'local',
    ansible_become: false,
    keepalived_eip_manage_host: false,
    keepalived_eip_path_prefix: `${root}/{{ inventory_hostname }}`,
    keepalived_eip_script_user: user,
    keepalived_eip_script_group: group,
    keepalived_eip_interface: hostInterface(),
    ...extraVars,
  };
  const result = run(
    'ansible-playbook',
    [playbook, '--tags', 'config', '-e', JSON.stringify(vars)],
    {
      ANSIBLE_CONFIG: join(repoRoot, 'ansible/ansible.cfg'),
      ANSIBLE_HOME: ansibleTmp,
      ANSIBLE_LOCAL_TEMP: ansibleTmp,
      ANSIBLE_REMOTE_TEMP: ansibleTmp,
      ANSIBLE_NOCOLOR: '1',
      EIP_PAIR_OUTPUTS: outputsFile,
    },
  );
  return { ...result, recap: parseRecap(result.stdout) };
}

export function parseRecap(stdout: string): Record<string, Recap> {
  const recap: Record<string, Recap> = {};
  const line =
    /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)/gm;
  for (const match of stdout.matchAll(line)) {
    const [, host, ok, changed, failed, skipped] = match;
    if (host === undefined) continue;
    recap[host] = {
      ok: Number(ok),
      changed: Number(changed),
      failed: Number(failed),
      skipped: Number(skipped),
    };
  }
  return recap;
}

/** Every file and directory under `dir`, relative to it, sorted. */
export function tree(dir: string, skip: readonly string[] = []): string[] {
  const entries = readdirSync(dir, { recursive: true, encoding: 'utf8' });
  return entries
    .filter((entry) => !skip.some((s) => entry === s || entry.startsWith(`${s}/`)))
    .sort();
}
