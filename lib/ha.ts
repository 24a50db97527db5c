// High availability (docs/ha.md): what the two front ends do so that a store
// on shared storage is served by the right node, from the right disk, never
// behind what this node already served. The store's own facts are in
// lib/store/identity.ts; here are the node's: its name, its note of what it
// served (outside the shared storage), the mount point it was told to trust.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Logger } from './log';
import {
  formatPosition,
  isBehind,
  readSeen,
  readServed,
  readStoreId,
  recordServed,
  seenPath,
  StoreRefused,
  writeSeen,
  type Node,
  type Position,
} from './store/identity';
import type { Store } from './store/store';

/** The node-local note's directory: outside /var/lib/nfs, which an HA cluster puts on the shared disk. */
export const DEFAULT_STATE_DIR = '/var/lib/nfsdcltrack-ts';
/** The daemon notes how far it served at most this often (and at grace, start and stop). */
export const NOTE_INTERVAL_MS = 60_000;

export interface HaSettings {
  /** nfs.conf store-id: serve only the store with this id. */
  storeId?: string;
  /** nfs.conf storage-mountpoint: serve only a storage dir on this mount. */
  storageMountpoint?: string;
  /** nfs.conf state-dir: where this node keeps its note (seen.<store-id>). */
  stateDir?: string;
}

type Env = Record<string, string | undefined>;

/** NFSDCLTRACK_STATE_DIR (a test hook: two "nodes" on one machine), else state-dir, else the default. */
export const stateDirOf = (env: Env, ha: HaSettings): string => env.NFSDCLTRACK_STATE_DIR || ha.stateDir || DEFAULT_STATE_DIR;

export function firstLine(file: string): string | null {
  try {
    return fs.readFileSync(file, 'latin1').split('\n')[0].trim() || null;
  } catch {
    return null;
  }
}

/** This node: its host name and machine id (NFSDCLTRACK_HOSTNAME, NFSDCLTRACK_MACHINE_ID: test hooks). */
export function thisNode(env: Env): Node {
  const host = env.NFSDCLTRACK_HOSTNAME || os.hostname();
  const machineId = env.NFSDCLTRACK_MACHINE_ID || firstLine('/etc/machine-id') || firstLine('/var/lib/dbus/machine-id') || host;
  return { host, machineId };
}

// --- the mount point ----------------------------------------------------------

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mount holding `p` (the nearest existing ancestor of it), from /proc/self/mountinfo. */
export function mountOf(p: string, mountinfo = '/proc/self/mountinfo'): MountInfo | null {
  let real = path.resolve(p);
  for (;;) {
    try {
      real = fs.realpathSync(real);
      break;
    } catch {
      const up = path.dirname(real);
      if (up === real) return null;
      real = up;
    }
  }
  let text: string;
  try {
    text = fs.readFileSync(mountinfo, 'utf8');
  } catch {
    return null;
  }
  let best: MountInfo | null = null;
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mp = unescapeMount(left[4] ?? '');
    if (!(mp === '/' || real === mp || real.startsWith(mp + '/'))) continue;
    if (best && mp.length < best.mountPoint.length) continue;
    best = { mountPoint: mp, fsType: right[0] ?? '?', source: unescapeMount(right[1] ?? '?'), options: left[5] ?? '' };
  }
  return best;
}

/**
 * Is `dir` on the filesystem mounted at `mountPoint`? A reason to refuse it,
 * or null. The dir must exist, be on the same device as the mount point, and
 * the mount point must be a mount of its own (not the root filesystem's
 * directory that an unmounted disk leaves behind).
 */
export function mountVerdict(dir: string, mountPoint: string, mountinfo?: string): string | null {
  let dev: number;
  let mpDev: number;
  try {
    dev = fs.statSync(dir).dev;
    mpDev = fs.statSync(mountPoint).dev;
  } catch (e) {
    return `storage-mountpoint ${mountPoint}: ${(e as Error).message}`;
  }
  let real: string;
  try {
    real = fs.realpathSync(mountPoint);
  } catch (e) {
    return `storage-mountpoint ${mountPoint}: ${(e as Error).message}`;
  }
  if (mountOf(real, mountinfo)?.mountPoint !== real) return `${mountPoint} is not a mount point: is the shared storage mounted?`;
  if (dev !== mpDev) return `${dir} is not on the filesystem mounted at ${mountPoint}`;
  return null;
}

/**
 * The guard of a store with storage-mountpoint set: asked before every read
 * and write, it reads mountinfo only when the storage dir's device changed
 * (one stat otherwise), so the daemon's batches do not pay for it.
 */
export function mountGuard(dir: string, mountPoint: string): () => string | null {
  let okDev: number | null = null;
  return () => {
    let dev: number;
    try {
      dev = fs.statSync(dir).dev;
    } catch (e) {
      okDev = null;
      return `storage-mountpoint ${mountPoint}: ${(e as Error).message}`;
    }
    if (dev === okDev) return null;
    const why = mountVerdict(dir, mountPoint);
    okDev = why === null ? dev : null;
    return why;
  };
}

/** The store's guard for the settings (undefined when none applies). */
export function guardFor(dir: string, ha: HaSettings): (() => string | null) | undefined {
  return ha.storageMountpoint ? mountGuard(dir, ha.storageMountpoint) : undefined;
}

/** With a pin or a mount point, a missing storage dir is refused, not made: it is where the shared disk should be. */
export const mustExist = (ha: HaSettings): boolean => ha.storeId !== undefined || ha.storageMountpoint !== undefined;

/**
 * Why `store` (opened with the settings' pin and guard) must not be served
 * or written, or null: checked before anything (ensureStorageDir) could
 * make an empty store where the shared disk should be.
 */
export function refusal(store: Pick<Store, 'vet'>, ha: HaSettings): string | null {
  if (!mustExist(ha)) return null;
  try {
    store.vet();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// --- starting to serve, and noting how far --------------------------------------

export interface ServeContext {
  log: Pick<Logger, 'error' | 'warn' | 'debug'>;
  env: Env;
  ha: HaSettings;
  now?: () => number;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A store that is behind this node's note: a reason to refuse it, or null. */
export function rollbackVerdict(stateDir: string, id: string, at: Position): string | null {
  const seen = readSeen(stateDir, id);
  if (seen === 'none' || seen === 'damaged') return null;
  if (!isBehind(at, seen)) return null;
  return (
    `store ${id} is at ${formatPosition(at)}, behind ${formatPosition(seen)} that this node served on ${new Date(seen.time * 1000).toISOString()}: ` +
    `it was rolled back (a restored backup, a split brain resolved against this node's writes); clients it lost or brought back could be wrongly refused or granted. ` +
    `Check it ('nfsdcltrack status'), then remove ${seenPath(stateDir, id)} to accept it`
  );
}

/**
 * A node starts serving the store (upcall init, daemon start): give the store
 * an id if it has none, refuse it if it is behind this node's note, then
 * record this node in clients.served and note the position. Returns why the
 * store is refused (logged loudly, with the store's name; returned without
 * it, as a guard gives it), or null.
 */
export async function startServing(store: Store, ctx: ServeContext): Promise<string | null> {
  const now = ctx.now ?? nowSeconds;
  let id: string | null;
  try {
    id = await store.ensureId();
  } catch (e) {
    if (!(e instanceof StoreRefused)) throw e;
    ctx.log.error(e.message);
    return e.reason;
  }
  if (id === null) {
    ctx.log.error(`${store.dir}: clients.id is damaged: this store's identity is unknown, so a rollback cannot be noticed; see docs/ha.md`);
    return null;
  }
  const stateDir = stateDirOf(ctx.env, ctx.ha);
  const view = store.read();
  const at = view.position;
  view.close();
  const why = rollbackVerdict(stateDir, id, at);
  if (why !== null) {
    ctx.log.error(`refusing to serve the store in ${store.dir}: ${why}`);
    return why;
  }
  try {
    // Only a change of node is news: a restart on the same node writes nothing.
    const node = thisNode(ctx.env);
    const last = readServed(store.dir).pop();
    if (last?.machineId !== node.machineId) recordServed(store.dir, { ...node, time: now() });
  } catch (e) {
    ctx.log.warn(`cannot record this node in ${store.dir}: ${(e as Error).message}`);
  }
  note(stateDir, id, at, now(), ctx.log);
  return null;
}

/**
 * Note that this node served store `id` up to `at`, if the state dir exists
 * (the package and the unit make it): a node without it cannot notice a
 * rollback, which `status` says. Never lowers the note.
 */
export function note(stateDir: string, id: string, at: Position, time: number, log: ServeContext['log']): void {
  if (!fs.existsSync(stateDir)) {
    log.debug(() => `no state dir ${stateDir}: not noting how far store ${id} was served`);
    return;
  }
  const seen = readSeen(stateDir, id);
  if (seen !== 'none' && seen !== 'damaged' && !isBehind(seen, at)) {
    // The store went back under a running server (its disk swapped): said, the note kept.
    if (isBehind(at, seen)) log.error(`store ${id} is being written at ${formatPosition(at)}, behind ${formatPosition(seen)} that this node served: it was rolled back while in use; see docs/ha.md`);
    return;
  }
  try {
    writeSeen(stateDir, id, at, time);
  } catch (e) {
    log.warn(`cannot note how far store ${id} was served in ${stateDir}: ${(e as Error).message}`);
  }
}

/** After writes: note where this process's last write left the store, once it is new. */
export function noteWritten(store: Store, stateDir: string, log: ServeContext['log'], time = nowSeconds()): void {
  const at = store.lastWritten;
  if (!at) return;
  // The id was made with the store, or by startServing: read, not made, here.
  const id = readStoreId(store.dir).id;
  if (id) note(stateDir, id, at, time, log);
}
