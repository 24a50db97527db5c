// The writers' lock: a directory, clients.lock, in the storage dir (the
// protocol proper-lockfile uses: mkdir takes it, its mtime is the holder's
// heartbeat). Every wait is bounded, because the kernel waits for us
// uninterruptibly: a waiter gives up after `waitMs`; a holder that died stops
// refreshing the lock's mtime and loses it after `staleMs`; a live holder
// refreshes it every `staleMs / 3`, so a slow writer is never robbed.
//
// proper-lockfile itself is not used (docs/performance.md): loading it and its
// asynchronous mkdir through the thread pool cost ~3.5 ms of a ~13 ms upcall,
// its lockSync loads the stream modules (+8 ms), and its stat-then-rmdir
// takeover of a stale lock lets two waiters that both saw the dead lock remove
// it in turn, the second one removing the lock the first had just taken, so
// both would write at once (found in review; the contention test in
// test/faults-crash.ts sets up that race). Here a waiter first
// claims the takeover of that particular lock instance (its inode and mtime)
// with an exclusive mkdir, checks again that the same instance is still there
// and still stale, and only then removes it; everyone then competes for the
// lock with a plain mkdir again.
import * as fs from 'fs';
import * as path from 'path';
import { EREMOTEIO, ErrnoError } from '../errno';
import { namesIn } from './fsutil';

export const LOCK_NAME = 'clients.lock';
const TAKEOVER_PREFIX = `${LOCK_NAME}.takeover-`;

export interface LockOptions {
  /** How long to wait for the lock before giving up. */
  waitMs: number;
  /** Age of an unrefreshed lock after which its holder is taken for dead. */
  staleMs: number;
  /** Called when another process took our lock (we were stalled past staleMs). */
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
  /** False once the lock directory we made is gone or replaced (one lstat). */
  stillHeld(): boolean;
  /** Refresh the heartbeat if it is due: for long synchronous work. */
  beat(): void;
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

/**
 * If the lock at lockPath is stale, remove that very instance, safely against
 * other waiters doing the same. Returns true when something was removed.
 */
function takeOverIfStale(dir: string, lockPath: string, staleMs: number): boolean {
  const st = lstatOrNull(lockPath);
  if (!st || Date.now() - st.mtimeMs <= staleMs) return false;
  const guard = path.join(dir, `${TAKEOVER_PREFIX}${st.ino}-${Math.floor(st.mtimeMs)}`);
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
    const again = lstatOrNull(lockPath);
    if (!again || again.ino !== st.ino || again.mtimeMs !== st.mtimeMs) return false;
    // A symlink or file planted in place of the lock is removed, never
    // followed; a directory with something in it is left alone (and the
    // waiter times out) rather than emptied.
    return removeQuietly(lockPath, again.isDirectory());
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
 * The lock directory we made, kept fresh: its mtime is our heartbeat, renewed
 * every staleMs / 3 by an unref'd timer. The timer runs whenever the event
 * loop does (a waiting or paused holder); a long synchronous stretch (a
 * compaction) calls beat() itself.
 */
class Lock implements HeldLock {
  private readonly timer: ReturnType<typeof setInterval>;
  private lastBeat = Date.now();
  private lost = false;

  constructor(
    private readonly lockPath: string,
    private readonly ino: number,
    private readonly everyMs: number,
    private readonly onCompromised: (err: Error) => void,
  ) {
    this.timer = setInterval(() => this.refresh(), everyMs);
    this.timer.unref();
  }

  stillHeld(): boolean {
    try {
      const st = fs.lstatSync(this.lockPath);
      return st.isDirectory() && st.ino === this.ino;
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
    if (this.stillHeld()) removeQuietly(this.lockPath, true);
  }
}

/**
 * Take the lock: one mkdir when it is free. A waiter polls (a writer holds
 * the lock for a few ms), takes over a stale lock, and gives up at waitMs.
 * Synchronous file calls: no thread pool.
 */
export async function acquireLock(dir: string, opts: LockOptions): Promise<HeldLock> {
  const lockPath = path.join(dir, LOCK_NAME);
  const deadline = Date.now() + opts.waitMs;
  const staleMs = Math.max(2000, opts.staleMs);
  let pause = 1;
  for (;;) {
    try {
      fs.mkdirSync(lockPath, 0o700);
      const lock = new Lock(lockPath, fs.lstatSync(lockPath).ino, Math.floor(staleMs / 3), opts.onCompromised);
      if (Math.random() < 0.05) sweepGuards(dir, staleMs);
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (takeOverIfStale(dir, lockPath, staleMs)) continue;
      if (Date.now() >= deadline) {
        throw new ErrnoError(EREMOTEIO, `timed out after ${opts.waitMs} ms waiting for ${lockPath}`);
      }
      await sleep(pause + Math.random() * pause, opts.blockingWait === true);
      // Writers hold the lock for a few ms: poll often rather than idle.
      pause = Math.min(pause * 2, 8);
    }
  }
}
