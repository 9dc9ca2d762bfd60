import { readFileSync } from 'node:fs';

/**
 * Where a recorded VRRP transition came from, as the kernel tells it.
 *
 * startTicks: when this hook process started, in clock ticks since boot. keepalived forks its
 * hooks one after another in transition order, so comparing start times restores that order even
 * when hooks started concurrently reach the state dir in another.
 *
 * keepalived: the keepalived process that ran the hook (the nearest ancestor named keepalived), so
 * that a later reconcile can tell whether the MASTER it recorded is still alive. Null for a manual
 * run or a timer.
 */
export interface TransitionOrigin {
  readonly bootId: string;
  readonly startTicks: number;
  readonly keepalived?: { readonly pid: number; readonly startTicks: number } | null;
}

interface ProcStat {
  readonly comm: string;
  readonly ppid: number;
  readonly startTicks: number;
}

function procStat(pid: number | 'self'): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    // Fields after the command name: state is field 3 of the line, ppid 4, starttime 22.
    const rest = text.slice(close + 2).split(' ');
    const ppid = Number(rest[1]);
    const startTicks = Number(rest[19]);
    if (!Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTicks)) return null;
    return { comm: text.slice(open + 1, close), ppid, startTicks };
  } catch {
    return null;
  }
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export function currentOrigin(): TransitionOrigin | null {
  const self = procStat('self');
  const boot = bootId();
  if (self === null || boot === null) return null;
  let keepalived: TransitionOrigin['keepalived'] = null;
  let pid = self.ppid;
  // A hook runs as keepalived → (a wrapper shell →) node; a few levels are enough.
  for (let depth = 0; depth < 6 && pid > 1; depth++) {
    const parent = procStat(pid);
    if (parent === null) break;
    if (parent.comm === 'keepalived') {
      keepalived = { pid, startTicks: parent.startTicks };
      break;
    }
    pid = parent.ppid;
  }
  return { bootId: boot, startTicks: self.startTicks, keepalived };
}

/**
 * For a transition read from keepalived's notify FIFO: lines arrive in order, so each is as new as
 * the moment it is read (in the same clock ticks since boot as a hook's start time).
 */
export function transitionOriginNow(): TransitionOrigin | null {
  const origin = currentOrigin();
  if (origin === null) return null;
  try {
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    // /proc reports start times in USER_HZ, which Linux fixes at 100 for user space.
    if (Number.isFinite(uptime)) return { ...origin, startTicks: Math.floor(uptime * 100) };
  } catch {
    // fall through: the process start time still orders lines after earlier hooks
  }
  return origin;
}

/** True when `incoming` was forked before the transition already recorded: it is stale. */
export function isStaleTransition(
  incoming: TransitionOrigin | null,
  recorded: TransitionOrigin | null,
): boolean {
  if (incoming === null || recorded === null || incoming.bootId !== recorded.bootId) return false;
  return incoming.startTicks < recorded.startTicks;
}

/**
 * Why the recorded state can no longer be trusted, or null when it can (or cannot be judged): the
 * machine rebooted since, or the keepalived process that reported it is gone (it crashed or was
 * killed, so it never reported leaving MASTER).
 */
export function reporterGone(recorded: TransitionOrigin | null): string | null {
  if (recorded === null) return null;
  const boot = bootId();
  if (boot !== null && boot !== recorded.bootId) {
    return 'the machine rebooted since this state was recorded';
  }
  const k = recorded.keepalived;
  if (k === undefined || k === null) return null;
  const now = procStat(k.pid);
  if (now === null || now.comm !== 'keepalived' || now.startTicks !== k.startTicks) {
    return `the keepalived process that reported it (pid ${k.pid}) is no longer running`;
  }
  return null;
}
