import { chownSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * When the agent runs as root (an operator's manual run), files it creates in a directory owned by
 * keepalived's unprivileged script user must stay that user's: a root-owned state.json or log file
 * would lock every later hook out, and with it every failover.
 */
export function ownLikeParent(path: string): void {
  if (process.getuid?.() !== 0) return;
  try {
    const parent = statSync(dirname(path));
    if (parent.uid !== 0 || parent.gid !== 0) chownSync(path, parent.uid, parent.gid);
  } catch {
    // Best effort: the file may be gone (a released lock) or the filesystem may refuse.
  }
}
