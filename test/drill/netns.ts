import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Every name the drill creates starts with this, so an interrupted run can be swept up later. */
export const PREFIX = 'eipd';

export interface NodeLink {
  /** Namespace name, e.g. eipd-primary. */
  readonly ns: string;
  /** This node's end of its link to the emulator. */
  readonly apiIp: string;
}

export interface Topology {
  readonly nodes: readonly NodeLink[];
  /** Where the emulator listens: the root end of the first node's API link. */
  readonly emulatorIp: string;
}

export async function ip(...args: string[]): Promise<string> {
  const { stdout } = await exec('ip', args);
  return stdout;
}

export async function inNs(ns: string, ...command: string[]): Promise<string> {
  const { stdout } = await exec('ip', ['netns', 'exec', ns, ...command]);
  return stdout;
}

/**
 * The "instances" as namespaces. Their VPC-side interfaces (eth0, addressed later, once the
 * emulator has given each ENI its MAC and IP) hang off one bridge with no address on the root side:
 * pure layer 2, for VRRP between the peers. Each namespace has a /30 link to the root namespace
 * that carries only the route to the emulator. There is no default route, so nothing inside can
 * reach past this machine, and a metadata request that misses the stub fails instead of leaving.
 */
export async function createTopology(names: readonly string[]): Promise<Topology> {
  const bridge = `${PREFIX}-br`;
  await ip('link', 'add', bridge, 'type', 'bridge');
  await ip('link', 'set', bridge, 'up');
  const links: NodeLink[] = [];
  const emulatorIp = '198.18.0.1';
  for (const [i, name] of names.entries()) {
    const ns = `${PREFIX}-${name}`;
    const rootApi = `198.18.0.${4 * i + 1}`;
    const nsApi = `198.18.0.${4 * i + 2}`;
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    // Short names: Linux caps interface names at 15 characters.
    await ip('link', 'add', `${PREFIX}${i}v`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await ip('link', 'set', `${PREFIX}${i}v`, 'master', bridge, 'up');
    await ip('link', 'add', `${PREFIX}${i}a`, 'type', 'veth', 'peer', 'name', 'api0', 'netns', ns);
    await ip('addr', 'add', `${rootApi}/30`, 'dev', `${PREFIX}${i}a`);
    await ip('link', 'set', `${PREFIX}${i}a`, 'up');
    await ip('-n', ns, 'addr', 'add', `${nsApi}/30`, 'dev', 'api0');
    await ip('-n', ns, 'link', 'set', 'api0', 'up');
    if (rootApi !== emulatorIp) {
      await ip('-n', ns, 'route', 'add', `${emulatorIp}/32`, 'via', rootApi, 'dev', 'api0');
    }
    // The metadata service's address, local to this namespace: only its own stub answers there.
    await ip('-n', ns, 'addr', 'add', '169.254.169.254/32', 'dev', 'lo');
    links.push({ ns, apiIp: nsApi });
  }
  return { nodes: links, emulatorIp };
}

/** Removes every namespace and link the drill makes, including leftovers of an interrupted run. */
export async function destroyTopology(): Promise<void> {
  const namespaces = (await ip('netns', 'list').catch(() => ''))
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(`${PREFIX}-`));
  for (const ns of namespaces) await ip('netns', 'del', ns).catch(() => undefined);
  const links = (await ip('-o', 'link', 'show').catch(() => ''))
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter((name) => name.startsWith(PREFIX));
  for (const link of links) await ip('link', 'del', link).catch(() => undefined);
}

/** Drops VRRP (IP protocol 112) arriving in a namespace: both sides then believe the peer is dead. */
export async function blockVrrp(ns: string): Promise<void> {
  await inNs(ns, 'nft', 'add', 'table', 'inet', 'eipd_drill');
  await inNs(
    ns,
    'nft',
    'add chain inet eipd_drill input { type filter hook input priority 0 ; policy accept ; }',
  );
  await inNs(
    ns,
    'nft',
    'add',
    'rule',
    'inet',
    'eipd_drill',
    'input',
    'ip',
    'protocol',
    'vrrp',
    'drop',
  );
}

export async function unblockVrrp(ns: string): Promise<void> {
  await inNs(ns, 'nft', 'delete', 'table', 'inet', 'eipd_drill').catch(() => undefined);
}
