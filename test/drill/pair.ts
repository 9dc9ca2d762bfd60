import { execFile } from 'node:child_process';
import { appendFile, chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DescribeAddressesCommand, DescribeNetworkInterfacesCommand } from '@aws-sdk/client-ec2';
import { type ActionRecord, type Emulator, startEmulator } from '../support/emulator.js';
import type { StubNode } from '../support/imds-stub.js';
import { createWorld, type World, type WorldMode, type WorldNode } from '../support/world.js';
import {
  blockVrrp,
  createTopology,
  destroyTopology,
  inNs,
  ip,
  type Topology,
  unblockVrrp,
} from './netns.js';
import { type Proc, ProcessGroup } from './procs.js';

const exec = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../..');
const BUNDLE = join(REPO, 'agent/dist/eip-failover.mjs');
const SCRIPT_USER = 'nobody';
/** The reconcile timer's interval in the drill (the role's default is 1 min; the drill is short). */
export const RECONCILE_INTERVAL_S = 3;
const SCRIPT_GROUP = 'nogroup';

export type NodeName = 'primary' | 'secondary';
/** How keepalived tells the agent: notify hooks, or one long-lived reader of its notify FIFO. */
export type HookMode = 'notify' | 'fifo';
const INSTANCE = 'VI_EIP';

/** What the drill asks of the role beyond the CDK outputs. */
export interface RenderOptions {
  readonly nopreempt: boolean;
  readonly preemptDelay: number;
}

export interface DrillNode {
  readonly name: NodeName;
  readonly ns: string;
  readonly world: WorldNode;
  /** Where the role rendered this node: keepalived.conf, agent config, state and log dirs. */
  readonly root: string;
  readonly wrapper: string;
  keepalived: Proc | undefined;
  lb: Proc | undefined;
  imds: Proc | undefined;
}

export interface HookRun {
  readonly at: number;
  readonly exitCode: number;
  /**
   * keepalived (a notify hook or the FIFO reader), timer (the drill's stand-in for the systemd
   * reconcile timer), guard (eip-failover-fifo-guard, which that timer runs first in fifo mode).
   */
  readonly source: string;
  readonly args: string;
}

/**
 * One keepalived pair on this machine: two namespaces as instances, the EC2 emulator, an IMDSv2
 * stub in each namespace, a stand-in load balancer, and real keepalived with the configs the
 * project's Ansible role renders, calling the built agent.
 */
export class DrillPair {
  readonly procs = new ProcessGroup();
  readonly nodes: Record<NodeName, DrillNode>;
  /** What eip-failover-fifo-guard said when it acted (fifo mode), for the timeline. */
  readonly guardEvents: Array<{ at: number; node: NodeName; what: string }> = [];

  private constructor(
    readonly mode: WorldMode,
    readonly hookMode: HookMode,
    readonly dir: string,
    readonly topology: Topology,
    readonly emulator: Emulator,
    readonly world: World,
  ) {
    const node = (name: NodeName, i: number): DrillNode => ({
      name,
      ns: topology.nodes[i]?.ns as string,
      world: name === 'primary' ? world.primary : world.secondary,
      root: join(dir, name),
      wrapper: join(dir, 'bin', `eip-failover-${name}`),
      keepalived: undefined,
      lb: undefined,
      imds: undefined,
    });
    this.nodes = { primary: node('primary', 0), secondary: node('secondary', 1) };
  }

  static async create(
    mode: WorldMode,
    hookMode: HookMode,
    dir: string,
    log: (line: string) => void,
  ): Promise<DrillPair> {
    await destroyTopology();
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'bin'), { recursive: true, mode: 0o755 });
    const topology = await createTopology(['primary', 'secondary']);
    const emulator = await startEmulator({ host: topology.emulatorIp });
    log(`emulator at ${emulator.endpoint} (pid ${emulator.pid})`);
    const world = await createWorld(emulator.client(), { mode });
    const pair = new DrillPair(mode, hookMode, dir, topology, emulator, world);
    for (const node of Object.values(pair.nodes)) await pair.configureNode(node);
    return pair;
  }

  private async configureNode(node: DrillNode): Promise<void> {
    const prefix = Number(node.world.subnetCidr.split('/')[1]);
    await ip('-n', node.ns, 'link', 'set', 'eth0', 'address', node.world.macAddress);
    await ip('-n', node.ns, 'addr', 'add', `${node.world.privateIp}/${prefix}`, 'dev', 'eth0');
    await ip('-n', node.ns, 'link', 'set', 'eth0', 'up');
    const other = this.nodes[node.name === 'primary' ? 'secondary' : 'primary'].world;
    if (other.subnetCidr !== node.world.subnetCidr) {
      // Cross-AZ: in a VPC the router joins the subnets; on the drill's bridge a link route does.
      await ip('-n', node.ns, 'route', 'add', other.subnetCidr, 'dev', 'eth0');
    }
    await mkdir(node.root, { recursive: true, mode: 0o755 });
    await mkdir(join(node.root, 'tmp'), { recursive: true, mode: 0o700 });
    await this.writeWrapper(node);
  }

  /**
   * The command keepalived runs: the built bundle with the SDK pointed at the emulator and IMDS at
   * the namespace's own stub. No credentials: the agent gets them from the stub's instance profile.
   * Every run appends its exit code to hooks.log, which keepalived itself does not report. The
   * agent runs in the background so that a SIGTERM (keepalived ends its FIFO reader's process group
   * so at a reload and at shutdown; its death signal when keepalived dies) reaches it and its exit
   * code is still logged.
   */
  private async writeWrapper(node: DrillNode): Promise<void> {
    const hooksLog = join(node.root, 'hooks.log');
    const script = [
      '#!/bin/sh',
      `export AWS_ENDPOINT_URL_EC2='${this.emulator.endpoint}'`,
      "export AWS_EC2_METADATA_SERVICE_ENDPOINT='http://169.254.169.254'",
      'unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE',
      'export NODE_NO_WARNINGS=1',
      // The code-cache directory the role created under this node's root, as on a real node.
      `export EIP_FAILOVER_CACHE_DIR='${join(node.root, 'var/cache/eip-failover')}'`,
      `${process.execPath} ${BUNDLE} "$@" &`,
      'child=$!',
      "trap 'kill -TERM $child 2>/dev/null' TERM",
      'wait $child',
      'code=$?',
      // wait returns early when the trap ran: wait again for the agent's own exit code.
      'while kill -0 $child 2>/dev/null; do wait $child; code=$?; done',
      `printf '%s %s %s %s\\n' "$(date +%s%3N)" "$code" "\${EIP_HOOK_SOURCE:-keepalived}" "$*" >> '${hooksLog}'`,
      'exit $code',
      '',
    ].join('\n');
    await writeFile(node.wrapper, script, { mode: 0o755 });
    await writeFile(hooksLog, '');
    await chownToScriptUser(hooksLog);
  }

  /** Renders both nodes with the project's role from a CDK-shaped outputs file, like a user would. */
  async render(options: RenderOptions): Promise<void> {
    const outputsFile = join(this.dir, 'cdk-outputs.json');
    await writeFile(outputsFile, JSON.stringify(this.cdkOutputs(), null, 2));
    const vars = {
      keepalived_eip_manage_host: false,
      keepalived_eip_path_prefix: `${this.dir}/{{ inventory_hostname }}`,
      keepalived_eip_agent_command: `${this.dir}/bin/eip-failover-{{ inventory_hostname }}`,
      keepalived_eip_interface: 'eth0',
      keepalived_eip_script_user: SCRIPT_USER,
      keepalived_eip_script_group: SCRIPT_GROUP,
      keepalived_eip_check_port: 80,
      keepalived_eip_check_interval: 1,
      keepalived_eip_check_timeout: 1,
      keepalived_eip_check_fall: 2,
      keepalived_eip_check_rise: 2,
      keepalived_eip_advert_int: 1,
      keepalived_eip_nopreempt: options.nopreempt,
      keepalived_eip_preempt_delay: options.preemptDelay,
      keepalived_eip_agent_deadline_seconds: 30,
      keepalived_eip_reconcile_interval: `${RECONCILE_INTERVAL_S}s`,
      keepalived_eip_validate_allow_missing_interface: true,
      keepalived_eip_hook_mode: this.hookMode,
      // The guard reloads keepalived through its pid file, which the drill puts in the node's dir.
      keepalived_eip_keepalived_pid_file: `${this.dir}/{{ inventory_hostname }}/keepalived.pid`,
    };
    const varsFile = join(this.dir, 'drill-vars.json');
    await writeFile(varsFile, JSON.stringify(vars, null, 2));
    await exec(
      'ansible-playbook',
      ['--connection', 'local', '--tags', 'config', '-e', `@${varsFile}`, 'site.yml'],
      {
        cwd: join(REPO, 'ansible'),
        env: {
          ...process.env,
          EIP_PAIR_OUTPUTS: outputsFile,
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_STDOUT_CALLBACK: 'default',
        },
        maxBuffer: 16 * 1024 * 1024,
      },
    ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(
        `ansible-playbook failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`,
      );
    });
    for (const node of Object.values(this.nodes)) {
      // keepalived runs the hooks as the script user: it must own the state and log dirs.
      for (const sub of ['run/eip-failover', 'var/log/eip-failover']) {
        const path = join(node.root, sub);
        await mkdir(path, { recursive: true });
        await chownToScriptUser(path);
      }
    }
  }

  /** The file `cdk deploy --outputs-file` would write for this world (lib/outputs-contract.json). */
  cdkOutputs(): Record<string, Record<string, string>> {
    const w = this.world;
    const stack: Record<string, string> = {
      AllocationId: w.allocationId,
      PublicIp: w.publicIp,
      Mode: w.mode,
      Vip: w.vip ?? 'none',
      Region: 'eu-central-1',
    };
    for (const [label, node] of [
      ['Primary', w.primary],
      ['Secondary', w.secondary],
    ] as const) {
      stack[`${label}InstanceId`] = node.instanceId;
      stack[`${label}NetworkInterfaceId`] = node.networkInterfaceId;
      stack[`${label}PrivateIp`] = node.privateIp;
      stack[`${label}SubnetCidr`] = node.subnetCidr;
      stack[`${label}AvailabilityZone`] = node.availabilityZone;
    }
    return { KeepalivedEipPair: stack };
  }

  stubNode(node: DrillNode): StubNode {
    return {
      instanceId: node.world.instanceId,
      region: 'eu-central-1',
      availabilityZone: node.world.availabilityZone,
      macAddress: node.world.macAddress,
      networkInterfaceId: node.world.networkInterfaceId,
      vpcId: this.world.vpcId,
      subnetId: node.world.subnetId,
      subnetCidr: node.world.subnetCidr,
      primaryPrivateIp: node.world.privateIp,
      role: 'keepalived-eip-pair-node',
    };
  }

  async startImds(node: DrillNode): Promise<void> {
    node.imds = this.procs.inNs(node.ns, `imds-${node.name}`, process.execPath, [
      '--import',
      'tsx',
      join(REPO, 'test/drill/imds-node.ts'),
      JSON.stringify(this.stubNode(node)),
      this.emulator.endpoint,
    ]);
    await node.imds.waitFor(/^IMDS_READY/, 20_000);
  }

  /** The stand-in load balancer: an HTTP server on 127.0.0.1:80 the health check asks. */
  async startLb(node: DrillNode): Promise<void> {
    const docroot = join(node.root, 'www');
    await mkdir(docroot, { recursive: true });
    await writeFile(join(docroot, 'index.html'), `${node.name}\n`);
    node.lb = this.procs.inNs(node.ns, `lb-${node.name}`, 'python3', [
      '-u',
      '-m',
      'http.server',
      '80',
      '--bind',
      '127.0.0.1',
      '--directory',
      docroot,
    ]);
    await node.lb.waitFor(/Serving HTTP/, 10_000);
  }

  async stopLb(node: DrillNode): Promise<void> {
    await node.lb?.stop('SIGKILL');
    node.lb = undefined;
  }

  startKeepalived(node: DrillNode): Proc {
    const conf = join(node.root, 'etc/keepalived/keepalived.conf');
    node.keepalived = this.procs.inNs(
      node.ns,
      `keepalived-${node.name}`,
      'keepalived',
      [
        '--dont-fork',
        '--log-console',
        '--log-detail',
        '--vrrp',
        '--use-file',
        conf,
        '--pid',
        join(node.root, 'keepalived.pid'),
        '--vrrp_pid',
        join(node.root, 'keepalived-vrrp.pid'),
      ],
      {
        ...process.env,
        // Its SIGUSR1 data dump (which the guard reads) goes to $TMPDIR: one per node.
        TMPDIR: join(node.root, 'tmp'),
      },
    );
    return node.keepalived;
  }

  async killKeepalived(node: DrillNode, signal: NodeJS.Signals): Promise<void> {
    const parent = node.keepalived?.child.pid;
    if (signal === 'SIGKILL' && parent !== undefined) {
      // A crash, not a shutdown: keepalived's VRRP child would see its parent die and leave
      // gracefully (a priority-0 advert). Freeze the parent, kill the children, then the parent.
      process.kill(parent, 'SIGSTOP');
      const children = await exec('pgrep', ['-P', String(parent)]).then(
        (r) => r.stdout,
        () => '',
      );
      for (const pid of children.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      process.kill(parent, 'SIGKILL');
    }
    await node.keepalived?.stop(signal);
    node.keepalived = undefined;
  }

  /**
   * The drill's stand-in for the systemd timer the role installs (systemd does not run in the
   * namespaces): `eip-failover reconcile` on each node, as the script user, every intervalMs. It
   * runs whether or not keepalived does, so the agent's own guard against a dead MASTER is tested.
   */
  startReconcileTimer(intervalMs: number): void {
    let stopped = false;
    const tick = async () => {
      while (!stopped) {
        await new Promise((r) => setTimeout(r, intervalMs));
        const round = this.timerRound();
        this.timerInFlight = round;
        await round;
      }
    };
    this.timerRound = async () => {
      for (const node of Object.values(this.nodes)) {
        if (stopped || this.timerPaused) break;
        // Like the unit's ExecStartPre=+: as root, and a failure skips this round's reconcile.
        if (this.hookMode === 'fifo' && (await this.runGuard(node)) !== 0) continue;
        const config = join(node.root, 'etc/eip-failover/config.json');
        await exec('ip', [
          'netns',
          'exec',
          node.ns,
          'runuser',
          '-u',
          SCRIPT_USER,
          '--',
          'env',
          'EIP_HOOK_SOURCE=timer',
          node.wrapper,
          'reconcile',
          '--config',
          config,
        ]).catch(() => undefined);
      }
    };
    this.timerDone = tick();
    this.stopTimer = () => {
      stopped = true;
    };
  }

  /** eip-failover-fifo-guard on `node`, as the reconcile unit runs it; logged to hooks.log. */
  async runGuard(node: DrillNode): Promise<number> {
    const startedAt = Date.now();
    const result = await exec('ip', [
      ...['netns', 'exec', node.ns, join(node.root, 'usr/local/sbin/eip-failover-fifo-guard')],
      ...['--fifo', this.fifoPath(node), '--instance', INSTANCE],
      ...['--pid-file', join(node.root, 'keepalived.pid')],
    ]).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (err: { code?: number; stderr?: string }) => ({
        code: typeof err.code === 'number' ? err.code : -1,
        stderr: err.stderr ?? '',
      }),
    );
    const at = Date.now();
    // Its first line comes when it starts acting (it then waits for keepalived), the rest at its end.
    for (const [i, line] of result.stderr.split('\n').filter(Boolean).entries()) {
      this.guardEvents.push({
        at: i === 0 ? startedAt : at,
        node: node.name,
        what: line
          .replace(/^eip-failover-fifo-guard: /, '')
          .replaceAll(this.fifoPath(node), 'the FIFO'),
      });
    }
    await appendFile(join(node.root, 'hooks.log'), `${at} ${result.code} guard fifo-guard\n`);
    return result.code;
  }

  fifoPath(node: DrillNode): string {
    return join(node.root, 'run/eip-failover-notify/keepalived.fifo');
  }

  /** The pid of the agent process reading keepalived's FIFO on `node` (fifo mode), if any. */
  async fifoReaderPid(node: DrillNode): Promise<number | null> {
    const config = join(node.root, 'etc/eip-failover/config.json');
    const { stdout } = await exec('pgrep', ['-f', `${BUNDLE} fifo --config ${config} `]).catch(
      () => ({ stdout: '' }),
    );
    const pids = stdout.split('\n').filter(Boolean).map(Number);
    return pids[0] ?? null;
  }

  private timerDone: Promise<void> | undefined;
  private timerRound: () => Promise<void> = async () => {};
  private timerInFlight: Promise<void> | undefined;
  private timerPaused = false;

  /**
   * Holds the timer stand-in (after its current round), so that a scenario can set up a fault
   * between two runs of the timer, as a real one-minute timer would leave it; then resumes it.
   */
  async pauseTimer(): Promise<void> {
    this.timerPaused = true;
    await this.timerInFlight;
  }

  resumeTimer(): void {
    this.timerPaused = false;
  }
  private stopTimer: (() => void) | undefined;

  /** Where the EIP points now, as EC2 (the emulator) says. */
  async eipHolder(): Promise<{ eni: string | null; privateIp: string | null }> {
    const out = await this.emulator
      .client()
      .send(new DescribeAddressesCommand({ AllocationIds: [this.world.allocationId] }));
    const a = out.Addresses?.[0];
    return { eni: a?.NetworkInterfaceId ?? null, privateIp: a?.PrivateIpAddress ?? null };
  }

  async vipHolder(): Promise<string | null> {
    if (this.world.vip === undefined) return null;
    const out = await this.emulator.client().send(
      new DescribeNetworkInterfacesCommand({
        Filters: [{ Name: 'addresses.private-ip-address', Values: [this.world.vip] }],
      }),
    );
    return out.NetworkInterfaces?.[0]?.NetworkInterfaceId ?? null;
  }

  /** The node the EIP points at, or null. */
  async holderName(): Promise<NodeName | null> {
    const { eni } = await this.eipHolder();
    if (eni === this.world.primary.networkInterfaceId) return 'primary';
    if (eni === this.world.secondary.networkInterfaceId) return 'secondary';
    return null;
  }

  /** Polls EC2 until the EIP points at `name` (and its expected private IP), or the timeout passes. */
  async waitForHolder(name: NodeName, timeoutMs: number): Promise<number> {
    const node = this.nodes[name];
    const wantIp = this.world.vip ?? node.world.privateIp;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { eni, privateIp } = await this.eipHolder();
      if (eni === node.world.networkInterfaceId && privateIp === wantIp) return Date.now();
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = await this.eipHolder();
    throw new Error(
      `the EIP did not reach ${name} within ${timeoutMs} ms (it points at ${now.eni ?? 'nothing'} ${now.privateIp ?? ''})`,
    );
  }

  /**
   * Waits until EC2 accepted a move of the EIP to `name` that started at or after `since` and was
   * served after the action numbered `afterSeq`; returns that action. A move is an AssociateAddress
   * naming the node's ENI and expected private IP or, in same-subnet mode, an AssignPrivateIpAddresses
   * of the VIP to the node's ENI (EC2 moves the VIP's Elastic IP association with it, so the agent
   * sends no AssociateAddress then). Unlike {@link waitForHolder} this sees a move that another
   * writer undid a moment later, as the peer's reconcile may during a split brain.
   */
  async waitForMoveTo(
    name: NodeName,
    since: number,
    timeoutMs: number,
    afterSeq = -1,
  ): Promise<ActionRecord> {
    const eni = this.nodes[name].world.networkInterfaceId;
    const { vip, allocationId } = this.world;
    const wantIp = vip ?? this.nodes[name].world.privateIp;
    const movesHere = (a: ActionRecord): boolean => {
      if (a.status !== 200 || a.dryRun || a.params.NetworkInterfaceId !== eni) return false;
      if (a.action === 'AssociateAddress') {
        return a.params.AllocationId === allocationId && a.params.PrivateIpAddress === wantIp;
      }
      return (
        a.action === 'AssignPrivateIpAddresses' &&
        vip !== undefined &&
        Object.entries(a.params).some(([k, v]) => /^PrivateIpAddress\.\d+$/.test(k) && v === vip)
      );
    };
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const move = (await this.emulator.actions()).find(
        (a) => a.seq > afterSeq && Date.parse(a.startedAt) >= since && movesHere(a),
      );
      if (move) return move;
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = await this.eipHolder();
    throw new Error(
      `EC2 accepted no move of the EIP to ${name} within ${timeoutMs} ms (it points at ${now.eni ?? 'nothing'} ${now.privateIp ?? ''})`,
    );
  }

  /** Runs `eip-failover status --json` inside a node, as an operator would. */
  async status(node: DrillNode): Promise<{ code: number; report: Record<string, unknown> }> {
    const config = join(node.root, 'etc/eip-failover/config.json');
    const result = await exec(
      'ip',
      ['netns', 'exec', node.ns, node.wrapper, 'status', '--json', '-c', config],
      { env: { ...process.env, EIP_HOOK_SOURCE: 'operator' } },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code?: number; stdout?: string }) => ({
        code: typeof err.code === 'number' ? err.code : -1,
        stdout: err.stdout ?? '',
      }),
    );
    return {
      code: result.code,
      report: JSON.parse(result.stdout || '{}') as Record<string, unknown>,
    };
  }

  /** Each run of the agent keepalived made on this node, with its exit code. */
  async hookRuns(node: DrillNode): Promise<HookRun[]> {
    const text = await readFile(join(node.root, 'hooks.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [at, code, source, ...args] = line.split(' ');
        return {
          at: Number(at),
          exitCode: Number(code),
          source: source ?? '',
          args: args.join(' '),
        };
      });
  }

  /** The agent's JSON log lines on this node. */
  async agentLog(node: DrillNode): Promise<Array<Record<string, unknown>>> {
    const text = await readFile(join(node.root, 'var/log/eip-failover/agent.log'), 'utf8').catch(
      () => '',
    );
    return text
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  /** keepalived's own account of its state, from the lines it logged. */
  vrrpState(node: DrillNode): string {
    const lines = node.keepalived?.lines ?? [];
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = /Entering (MASTER|BACKUP|FAULT) STATE/.exec(lines[i]?.text ?? '');
      if (m?.[1]) return m[1];
    }
    return node.keepalived?.running ? 'INIT' : 'STOPPED';
  }

  blockVrrp(node: DrillNode): Promise<void> {
    return blockVrrp(node.ns);
  }

  unblockVrrp(node: DrillNode): Promise<void> {
    return unblockVrrp(node.ns);
  }

  async teardown(): Promise<void> {
    this.stopTimer?.();
    await this.timerDone;
    await this.procs.stopAll();
    await this.emulator.stop();
    await destroyTopology();
    await rm(this.dir, { recursive: true, force: true });
  }

  async inNode(node: DrillNode, ...command: string[]): Promise<string> {
    return inNs(node.ns, ...command);
  }
}

async function chownToScriptUser(path: string): Promise<void> {
  const { stdout: uid } = await exec('id', ['-u', SCRIPT_USER]);
  const { stdout: gid } = await exec('id', ['-g', SCRIPT_USER]);
  await chown(path, Number(uid), Number(gid));
  await chmod(path, 0o750).catch(() => undefined);
}
