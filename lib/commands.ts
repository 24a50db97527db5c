// The five commands the kernel sends (SPEC §3), returning the exit status the
// C program would (SPEC §6).
import * as fs from 'fs';
import { crashPoint } from './crashpoint';
import { EACCES, EINVAL, EPERM, EREMOTEIO, ERANGE, ErrnoError, errnoOf, statusFor } from './errno';
import { END_GRACE_FILE, liftGrace, parseGraceStart } from './grace';
import { guardFor, mustExist, noteWritten, refusal, startServing, stateDirOf, type HaSettings } from './ha';
import { parseHexId } from './hex';
import type { Logger } from './log';
import type { RecState } from './store/format';
import { namesIn } from './store/fsutil';
import { ensureStorageDir, Store } from './store/store';
import { strtol } from './strtol';
import { created, memberships } from './tracking';

export interface CommandContext {
  storagedir: string;
  env: Record<string, string | undefined>;
  log: Logger;
  /**
   * Imports an nfs-utils main.sqlite found in a fresh store (switching from
   * the C program). A hook, so that SQLite stays out of the upcall's bundle.
   */
  importLegacy?: (dir: string, log: Logger) => Promise<unknown>;
  /** store-id, storage-mountpoint, state-dir (docs/ha.md). */
  ha?: HaSettings;
  /** The store the command opened last (for noting how far it got). */
  opened?: Store;
}

export const KERNEL_COMMANDS = ['init', 'create', 'remove', 'check', 'gracedone'] as const;
export type KernelCommand = (typeof KERNEL_COMMANDS)[number];
export const NEEDS_ARG: Record<KernelCommand, boolean> = { init: false, create: true, remove: true, check: true, gracedone: true };

const hasSession = (env: CommandContext['env']): boolean => env.NFSDCLTRACK_CLIENT_HAS_SESSION?.[0] === 'Y';

function openStore(ctx: CommandContext): Store {
  const compact = Number(ctx.env.NFSDCLTRACK_COMPACT_BYTES);
  const ha = ctx.ha ?? {};
  // An upcall has nothing to do while it waits for the lock: it blocks.
  ctx.opened = new Store({
    dir: ctx.storagedir,
    log: ctx.log,
    compactBytes: compact > 0 ? compact : undefined,
    lock: { blockingWait: true },
    storeId: ha.storeId,
    guard: guardFor(ctx.storagedir, ha),
  });
  return ctx.opened;
}

/** Exit status of a failed write: the store's errno only when it could not be opened at all. */
function failure(ctx: CommandContext, what: string, e: unknown, errno: number): number {
  ctx.log.error(`${what}: ${(e as Error).message}`);
  return statusFor(errno);
}

async function maybeLiftGrace(ctx: CommandContext, count: number | null): Promise<void> {
  ctx.log.debug(() => `there are ${count ?? 'an unknown number of'} clients that have not completed reclaim`);
  if (count === 0) await liftGrace(ctx.env.NFSDCLTRACK_END_GRACE_FILE || END_GRACE_FILE, (m) => ctx.log.warn(m));
}

async function init(ctx: CommandContext): Promise<number> {
  try {
    fs.accessSync(ctx.storagedir, fs.constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EACCES') {
      return failure(ctx, `Unexpected error when checking access on ${ctx.storagedir}`, e, errnoOf(e, EACCES));
    }
  }
  const store = openStore(ctx);
  try {
    if (!ctx.ha || !mustExist(ctx.ha)) ensureStorageDir(ctx.storagedir);
    await store.init();
  } catch (e) {
    return failure(ctx, 'Failed to init database', e, EACCES);
  }
  // Every nfsd start: the store gets its id, is refused if rolled back, and records this node.
  if ((await startServing(store, { log: ctx.log, env: ctx.env, ha: ctx.ha ?? {} })) !== null) return statusFor(EACCES);
  if (ctx.importLegacy && fs.existsSync(`${ctx.storagedir}/main.sqlite`)) {
    // Its clients are refused if this fails: the safe way to fail.
    await ctx.importLegacy(ctx.storagedir, ctx.log).catch((e) => ctx.log.error((e as Error).message));
  }
  const graceStart = parseGraceStart(ctx.env.NFSDCLTRACK_GRACE_START);
  if (graceStart !== null) {
    const view = store.read();
    try {
      await maybeLiftGrace(ctx, view.countReclaiming(graceStart));
    } finally {
      view.close();
    }
  }
  return 0;
}

async function create(ctx: CommandContext, id: string): Promise<number> {
  const store = openStore(ctx);
  const session = hasSession(ctx.env);
  const graceStart = session ? parseGraceStart(ctx.env.NFSDCLTRACK_GRACE_START) : null;
  let count: number | null;
  try {
    count = await store.mutate((tx) => {
      const prev = tx.get(id);
      // A princhash the daemon recorded in this epoch stays: the upcall has none to give.
      const ph = prev && prev.epoch === tx.epochs.current ? (prev.ph ?? null) : null;
      tx.put(id, created(prev, tx.epochs, { time: store.time(), session, ph }));
      return graceStart === null ? null : tx.countReclaiming(graceStart);
    });
  } catch (e) {
    return failure(ctx, `Failed to create client record`, e, EREMOTEIO);
  }
  if (graceStart !== null) await maybeLiftGrace(ctx, count);
  return 0;
}

async function remove(ctx: CommandContext, id: string): Promise<number> {
  try {
    await openStore(ctx).mutate((tx) => tx.put(id, null));
    return 0;
  } catch (e) {
    return failure(ctx, `Failed to remove client record`, e, EREMOTEIO);
  }
}

async function check(ctx: CommandContext, id: string): Promise<number> {
  const store = openStore(ctx);
  const session = hasSession(ctx.env);
  let writable = true;
  if (!session && (fs.existsSync(store.snapshotPath) || fs.existsSync(store.journalPath))) {
    // A v4.0 client's record gets a fresh time, so gracedone keeps it, and
    // a place in the current epoch, as nfsdcld's Check gives it: look it up
    // and refresh it in one pass under the lock.
    try {
      const rec = await store.mutate((tx) => {
        const r = tx.get(id);
        if (r && (r.time !== store.time() || r.epoch !== tx.epochs.current)) {
          tx.put(id, created(r, tx.epochs, { time: store.time(), session: r.session, ph: memberships(r, tx.epochs)[0].ph }));
        }
        return r;
      });
      return rec ? 0 : checkLegacy(ctx, store, id, session);
    } catch (e) {
      // No lock or no write (a full or read-only disk, a stuck writer): what
      // the store proves still decides (issue 3), and no second wait follows.
      ctx.log.warn(`cannot update the client's record time: ${(e as Error).message}`);
      writable = false;
    }
  }
  let found: RecState | null = null;
  try {
    const view = store.read();
    try {
      found = view.get(id);
    } finally {
      view.close();
    }
  } catch (e) {
    // As in C, a failed lookup falls through to the legacy transition.
    ctx.log.error(`Unable to read the client store: ${(e as Error).message}`);
  }
  // Unlike C, a proven v4.0 client whose time could not be updated may still
  // reclaim; gracedone may then drop its record, which can only cost it a
  // reclaim after a later reboot.
  if (found) return 0;
  return writable ? checkLegacy(ctx, store, id, session) : statusFor(EPERM);
}

/** SPEC §5: a client known only to the old recovery directory is let in once. */
async function checkLegacy(ctx: CommandContext, store: Store, id: string, session: boolean): Promise<number> {
  const recdir = ctx.env.NFSDCLTRACK_LEGACY_RECDIR;
  if (recdir === undefined) {
    ctx.log.debug('No NFSDCLTRACK_LEGACY_RECDIR env var');
    return statusFor(EPERM);
  }
  try {
    if (!fs.statSync(recdir).isDirectory()) {
      ctx.log.debug(`${recdir} is not a directory`);
      return statusFor(EPERM);
    }
  } catch (e) {
    ctx.log.debug(`Unable to stat ${recdir}: ${(e as Error).message}`);
    return statusFor(EPERM);
  }
  try {
    await store.mutate((tx) => tx.put(id, created(tx.get(id), tx.epochs, { time: session ? 0 : store.time(), session, ph: null })));
  } catch (e) {
    return failure(ctx, 'Failed to insert client', e, EPERM);
  }
  await crashPoint('legacy-inserted');
  try {
    fs.rmdirSync(recdir);
  } catch (e) {
    ctx.log.debug(`Failed to rmdir ${recdir}: ${(e as Error).message}`);
    return statusFor(EPERM);
  }
  await crashPoint('legacy-removed');
  return 0;
}

async function gracedone(ctx: CommandContext, arg: string): Promise<number> {
  const r = strtol(arg);
  if (r.range) return failure(ctx, `gracedone: time '${arg}' out of range`, new Error('ERANGE'), ERANGE);
  if (r.end < arg.length || (!r.converted && arg.length > 0)) {
    ctx.log.error(`gracedone: invalid time '${arg}'`);
    return statusFor(EINVAL);
  }
  // time_t compared as unsigned: a negative time removes every record.
  const threshold = r.value < 0n ? r.value + (1n << 64n) : r.value;
  ctx.log.debug(() => `grace done. gracetime=${threshold}`);
  let status = 0;
  try {
    const removed = await openStore(ctx).gracedone(threshold);
    ctx.log.debug(() => `removed ${removed} unreclaimed client(s)`);
  } catch (e) {
    status = failure(ctx, 'Failed to remove unreclaimed clients', e, EREMOTEIO);
  }
  legacyGracedone(ctx);
  return status;
}

/** Longest "<topdir>/<name>" the C program handles (its 1024-byte buffer, NUL included). */
const LEGACY_PATH_MAX = 1023;

function legacyGracedone(ctx: CommandContext): void {
  const topdir = ctx.env.NFSDCLTRACK_LEGACY_TOPDIR;
  if (topdir === undefined) return;
  for (const name of namesIn(topdir)) {
    // Joined as C does ("%s/%s"), not normalised: rmdir sees the same path.
    const entry = `${topdir}/${name}`;
    if (Buffer.byteLength(entry) > LEGACY_PATH_MAX) {
      ctx.log.warn(`legacy_gracedone: unable to build filename for ${name}!`);
      continue;
    }
    try {
      fs.rmdirSync(entry);
    } catch (e) {
      ctx.log.warn(`legacy_gracedone: unable to rmdir ${entry}: ${(e as Error).message}`);
    }
  }
}

/** Run a kernel command; argument validity is checked after the store opens, as in C. */
export async function runKernelCommand(cmd: KernelCommand, arg: string | undefined, ctx: CommandContext): Promise<number> {
  const status = await dispatch(cmd, arg, ctx);
  // A new generation (a compaction, gracedone) is worth noting; a journal append is not (docs/ha.md).
  if (ctx.opened?.lastWritten?.seq === 0) noteWritten(ctx.opened, stateDirOf(ctx.env, ctx.ha ?? {}), ctx.log);
  return status;
}

/** What the kernel is told when the configured store is not there: "no tracking", never a reclaim. */
const REFUSED: Record<KernelCommand, number> = { init: EACCES, create: EREMOTEIO, remove: EREMOTEIO, check: EPERM, gracedone: EREMOTEIO };

async function dispatch(cmd: KernelCommand, arg: string | undefined, ctx: CommandContext): Promise<number> {
  const refused = ctx.ha ? refusal(openStore(ctx), ctx.ha) : null;
  if (refused !== null) return failure(ctx, cmd, new Error(refused), REFUSED[cmd]);
  if (cmd === 'init') return init(ctx);
  try {
    ensureStorageDir(ctx.storagedir);
  } catch (e) {
    return failure(ctx, 'Unable to open the client store', e, e instanceof ErrnoError ? e.errno : EREMOTEIO);
  }
  if (cmd === 'gracedone') return gracedone(ctx, arg!);
  ctx.log.debug(() => `cltrack_${cmd}: ${cmd} client record`);
  const hex = parseHexId(arg!);
  if (!hex.ok) {
    ctx.log.error(`${cmd}: invalid client id (${hex.errno === EINVAL ? 'not an even number of hex digits' : 'longer than 1024 bytes'})`);
    return statusFor(hex.errno);
  }
  if (cmd === 'create') return create(ctx, hex.id);
  if (cmd === 'remove') return remove(ctx, hex.id);
  return check(ctx, hex.id);
}
