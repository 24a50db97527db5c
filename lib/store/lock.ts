// The writers' lock: a directory, clients.lock, in the storage dir (the
// protocol proper-lockfile uses: mkdir takes it, its mtime is a heartbeat).
// Every wait is bounded, because the kernel waits for us uninterruptibly: a
// waiter gives up when one holder has kept the lock for `waitMs`, or after
// PATIENCE times that in all. Not after waitMs in all: in a reclaim storm
// the writers queue behind each other, each holding the lock briefly, and a
// waiter that gave up then would lose a client's record (a create exiting
// 135: the client's next reclaim is refused).
//
// Who holds it. Right after the mkdir the holder creates, inside it, an empty
// file whose name says who it is: owner.<pid>.<start>.<host>.<token>, where
// <start> is the process's start time (/proc/self/stat field 22), <host> the
// boot id plus the pid namespace, and <token> random. The name, not content:
// an empty file needs no data block (a nearly full disk must still give the
// lock to a v4.0 check), and "is this still mine?" stays one lstat. The token
// is the identity: an inode number is not (ext4 hands a freed one back at
// once, so a directory made after ours can have our inode).
//
// When the holder is dead. A waiter judges the holder by what it can prove:
// * same host (boot id and pid namespace): dead when that pid is gone, a
//   zombie, or a process with another start time; otherwise alive, however
//   long it has been blocked (in an fsync on a slow disk, say: it cannot run
//   a heartbeat timer then) -- the waiter gives up at waitMs instead;
// * another host (another boot of this machine, or another node sharing the
//   store over NFS or a SAN), or no owner file (a lock of proper-lockfile's,
//   or a holder killed before it wrote one): the mtime rule, dead when the
//   mtime is more than staleMs away from now, in either direction (a clock
//   stepped back after a crash leaves a dead lock dated in the future). A
//   pid means nothing on another node, so there the holder keeps its lock
//   by the heartbeat alone: it refreshes the mtime every staleMs / 3, and a
//   holder on another node stalled past staleMs in one system call can be
//   robbed. It then finds out before it acknowledges or renames anything
//   (stillHeld() before and after each step that matters, in store.ts).
//
// proper-lockfile itself is not used (docs/performance.md): loading it and its
// asynchronous mkdir through the thread pool cost ~3.5 ms of a ~13 ms upcall,
// and its stat-then-rmdir takeover of a stale lock lets two waiters that both
// saw the dead lock remove it in turn, the second one removing the lock the
// first had just taken (the contention test in test/faults-crash.ts sets up
// that race). Here a waiter first claims the takeover of that particular lock
// instance (its token, or for an owner-less lock its inode and mtime) with an
// exclusive mkdir, checks again that the same instance is still there and
// still dead, removes its owner file and the directory, and everyone then
// competes for the lock with a plain mkdir again.
import * as fs from 'fs';
import * as path from 'path';
import { EREMOTEIO, ErrnoError } from '../errno';
import { namesIn, readBytes } from './fsutil';

export const LOCK_NAME = 'clients.lock';
const TAKEOVER_PREFIX = `${LOCK_NAME}.takeover-`;
const OWNER_PREFIX = 'owner.';

export interface LockOptions {
  /** How long to wait for the lock before giving up. */
  waitMs: number;
  /** Age of an unrefreshed lock after which a holder whose liveness cannot be proven is taken for dead. */
  staleMs: number;
  /** Called when another process took our lock. */
  onCompromised: (err: Error) => void;
  /**
   * Wait by blocking the thread, not on a timer: for a process with nothing
   * else to do (an upcall). A reclaim storm, 8 callers on 2 CPUs, ran ~10%
   * faster so: every timer wake-up of a waiter took CPU from the holder.
   */
  blockingWait?: boolean;
}

export const DEFAULT_LOCK: Omit<LockOptions, 'onCompromised'> = { waitMs: 10_000, staleMs: 4_000 };

/** A held lock. */
export interface HeldLock {
  release(): void;
  /** False once our owner file is gone from the lock directory (one lstat). */
  stillHeld(): boolean;
  /** Refresh the heartbeat if it is due: for long synchronous work. */
  beat(): void;
}

/** Who holds a lock, as its owner file names it. */
export interface LockOwner {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  start: string;
  /** Boot id and pid namespace: where the pid means something. */
  host: string;
  token: string;
}

export function ownerName(o: LockOwner): string {
  return `${OWNER_PREFIX}${o.pid}.${o.start}.${o.host}.${o.token}`;
}

export function parseOwnerName(name: string): LockOwner | null {
  const m = /^owner\.(\d+)\.(\d+)\.([0-9a-f-]+:\d+)\.([0-9a-z]+)$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2], host: m[3], token: m[4] } : null;
}

/** The start time of a live process, from a /proc/<pid>/stat line; null for a zombie or garbage. */
export function startTimeOf(stat: string): string | null {
  // Fields after the command name (which may hold spaces and parentheses): state is field 3, start time 22.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (f.length < 20 || f[0] === 'Z' || f[0] === 'X') return null;
  return /^\d+$/.test(f[19]) ? f[19] : null;
}

/**
 * Is the holder of a lock dead? Pure: `host` is ours (null when /proc could
 * not tell), `startOf` reads a pid's start time on this host (null: no such
 * live process). The rule is the header comment's.
 */
export function holderIsDead(
  owner: LockOwner | null,
  host: string | null,
  startOf: (pid: number) => string | null,
  mtimeMs: number,
  nowMs: number,
  staleMs: number,
): boolean {
  if (owner && host !== null && owner.host === host) return startOf(owner.pid) !== owner.start;
  return Math.abs(nowMs - mtimeMs) > staleMs;
}

/** A small /proc file; null if unreadable. (readBytes: the calls a store read has warmed up; Bun's first readFileSync costs ~0.25 ms.) */
function readProc(p: string): string | null {
  try {
    const fd = fs.openSync(p, fs.constants.O_RDONLY);
    try {
      return readBytes(fd, 0, 1024).toString('latin1');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

function procStartTime(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  return stat === null ? null : startTimeOf(stat);
}

let self: { host: string | null; start: string | null } | null = null;
/** Our own identity, read once per process (three small /proc reads). */
function whoAmI(): { host: string | null; start: string | null } {
  if (self) return self;
  const boot = readProc('/proc/sys/kernel/random/boot_id')?.trim();
  let ns: number | undefined;
  try {
    // The namespace's inode number: what readlink shows as pid:[<ino>].
    ns = fs.statSync('/proc/self/ns/pid').ino;
  } catch {
    /* no /proc */
  }
  const start = procStartTime(process.pid);
  // Without all three, waiters must judge us by the mtime: they see another host.
  const host = boot?.length === 36 && ns && start !== null ? `${boot}:${ns}` : null;
  self = { host, start };
  return self;
}

let sleeper: Int32Array | null = null;
/** Sleep; blocking the thread, or on a timer, which lets the event loop run meanwhile. */
function sleep(ms: number, blocking: boolean): Promise<void> | void {
  if (!blocking) return new Promise((r) => setTimeout(r, ms));
  // Made on first use: an uncontended writer never sleeps.
  sleeper ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleeper, 0, 0, ms);
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Remove a name; false when it could not be (gone already, or a non-empty directory). */
function removeQuietly(p: string, isDir: boolean): boolean {
  try {
    if (isDir) fs.rmdirSync(p);
    else fs.unlinkSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A lock instance as a waiter sees it: the name on it and how to tell it from a later one. */
interface Seen {
  st: fs.Stats;
  /** The owner file's name, when the lock is a directory that has one. */
  ownerFile: string | null;
  owner: LockOwner | null;
  /** The token, or for an owner-less lock its inode and mtime. */
  id: string;
}

function look(lockPath: string): Seen | null {
  const st = lstatOrNull(lockPath);
  if (!st) return null;
  const ownerFile = st.isDirectory() ? (namesIn(lockPath).find((n) => n.startsWith(OWNER_PREFIX)) ?? null) : null;
  const owner = ownerFile === null ? null : parseOwnerName(ownerFile);
  return { st, ownerFile, owner, id: owner ? owner.token : `${st.ino}-${Math.floor(st.mtimeMs)}` };
}

/** Is the lock at lockPath free, held by a live holder, or left by a dead one? For `nfsdcltrack status`. */
export function lockVerdict(dir: string, staleMs = DEFAULT_LOCK.staleMs): { dead: boolean; owner: LockOwner | null; mtimeMs: number } | null {
  const seen = look(path.join(dir, LOCK_NAME));
  if (!seen) return null;
  return { dead: isDead(seen, Math.max(2000, staleMs)), owner: seen.owner, mtimeMs: seen.st.mtimeMs };
}

const isDead = (s: Seen, staleMs: number): boolean => holderIsDead(s.owner, whoAmI().host, procStartTime, s.st.mtimeMs, Date.now(), staleMs);

/**
 * If the lock at lockPath was left by a dead holder, remove that very
 * instance, safely against other waiters doing the same. Returns true when
 * something was removed.
 */
function takeOverIfDead(dir: string, lockPath: string, staleMs: number): boolean {
  const seen = look(lockPath);
  if (!seen || !isDead(seen, staleMs)) return false;
  const guard = path.join(dir, `${TAKEOVER_PREFIX}${seen.id}`);
  try {
    fs.mkdirSync(guard, 0o700);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another waiter is taking this instance over, or died doing it (a
    // takeover lasts microseconds): clear a guard as old as a stale lock.
    const g = lstatOrNull(guard);
    if (g && Date.now() - g.mtimeMs > staleMs) removeQuietly(guard, true);
    return false;
  }
  try {
    const again = look(lockPath);
    if (!again || again.id !== seen.id || again.ownerFile !== seen.ownerFile || !isDead(again, staleMs)) return false;
    // A symlink or file planted in place of the lock is removed, never
    // followed; a directory with anything in it besides the owner file is
    // left alone (and the waiter times out) rather than emptied.
    if (!again.st.isDirectory()) return removeQuietly(lockPath, false);
    if (again.ownerFile !== null) removeQuietly(path.join(lockPath, again.ownerFile), false);
    return removeQuietly(lockPath, true);
  } finally {
    removeQuietly(guard, true);
  }
}

/** Remove takeover guards left by waiters killed mid-takeover (we hold the lock). */
function sweepGuards(dir: string, staleMs: number): void {
  for (const n of namesIn(dir)) {
    if (!n.startsWith(TAKEOVER_PREFIX)) continue;
    const p = path.join(dir, n);
    const g = lstatOrNull(p);
    if (g && Date.now() - g.mtimeMs > staleMs) removeQuietly(p, g.isDirectory());
  }
}

/**
 * The lock directory we made, with our owner file in it. Its mtime is kept
 * fresh for the waiters that judge by it (another node, proper-lockfile):
 * renewed every staleMs / 3 by an unref'd timer, which runs whenever the
 * event loop does (a waiting or paused holder); a long synchronous stretch
 * (a compaction) calls beat() itself.
 */
class Lock implements HeldLock {
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly ownerPath: string;
  private lastBeat = Date.now();
  private lost = false;

  constructor(
    private readonly lockPath: string,
    ownerFile: string,
    private readonly everyMs: number,
    private readonly onCompromised: (err: Error) => void,
  ) {
    this.ownerPath = path.join(lockPath, ownerFile);
    this.timer = setInterval(() => this.refresh(), everyMs);
    this.timer.unref();
  }

  stillHeld(): boolean {
    try {
      return fs.lstatSync(this.ownerPath).isFile();
    } catch {
      return false;
    }
  }

  /** Rate-limited, for callers in a loop: refresh once staleMs / 3 has passed since the last time. */
  beat(): void {
    if (Date.now() - this.lastBeat >= this.everyMs) this.refresh();
  }

  private refresh(): void {
    if (this.lost) return;
    const now = Date.now();
    this.lastBeat = now;
    if (!this.stillHeld()) {
      this.lost = true;
      clearInterval(this.timer);
      this.onCompromised(new Error(`${this.lockPath} was removed or replaced by another process`));
      return;
    }
    try {
      fs.utimesSync(this.lockPath, now / 1000, now / 1000);
    } catch {
      /* the next beat, or the check before writing, finds out */
    }
  }

  release(): void {
    clearInterval(this.timer);
    // Only our own owner file says the directory is ours: a lock taken over
    // from us (same name, perhaps the same inode) is left to its holder.
    if (removeQuietly(this.ownerPath, false)) removeQuietly(this.lockPath, true);
  }
}

/** Make our owner file in the lock directory just made; on failure, give the directory back. */
function claim(lockPath: string): string {
  const me = whoAmI();
  const token = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const file = ownerName({ pid: process.pid, start: me.start ?? '0', host: me.host ?? '0:0', token });
  try {
    fs.closeSync(fs.openSync(path.join(lockPath, file), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600));
  } catch (e) {
    removeQuietly(lockPath, true);
    throw e;
  }
  return file;
}

/** How many times waitMs a waiter waits in all while the lock changes hands. */
export const PATIENCE = 6;

/**
 * Take the lock: one mkdir and one empty file when it is free. A waiter polls
 * (a writer holds the lock for a few ms), takes over a dead holder's lock,
 * and gives up when one holder has kept it for waitMs (or at PATIENCE times
 * that in all). Synchronous file calls: no thread pool.
 */
export async function acquireLock(dir: string, opts: LockOptions): Promise<HeldLock> {
  const lockPath = path.join(dir, LOCK_NAME);
  const started = Date.now();
  let holder: string | null = null;
  let heldSince = started;
  const staleMs = Math.max(2000, opts.staleMs);
  let pause = 1;
  for (;;) {
    try {
      fs.mkdirSync(lockPath, 0o700);
      const lock = new Lock(lockPath, claim(lockPath), Math.floor(staleMs / 3), opts.onCompromised);
      if (Math.random() < 0.05) sweepGuards(dir, staleMs);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (takeOverIfDead(dir, lockPath, staleMs)) continue;
      const now = Date.now();
      const id = look(lockPath)?.id ?? null;
      if (id !== holder) {
        holder = id;
        heldSince = now;
      }
      if (now - heldSince >= opts.waitMs) {
        throw new ErrnoError(EREMOTEIO, `timed out: one holder kept ${lockPath} for ${opts.waitMs} ms`);
      }
      if (now - started >= opts.waitMs * PATIENCE) {
        throw new ErrnoError(EREMOTEIO, `timed out after ${now - started} ms waiting for ${lockPath} (it kept changing hands)`);
      }
      await sleep(pause + Math.random() * pause, opts.blockingWait === true);
      // Writers hold the lock for a few ms: poll often rather than idle.
      pause = Math.min(pause * 2, 8);
    }
  }
}

/** We no longer hold the lock: nothing may be written, renamed or acknowledged. */
export class LockLost extends ErrnoError {
  constructor(message: string) {
    super(EREMOTEIO, message);
  }
}
