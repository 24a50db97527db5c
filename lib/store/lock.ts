// The writers' lock: a proper-lockfile lock directory in the storage dir.
// Every wait is bounded, because the kernel waits for us uninterruptibly: a
// waiter gives up after `waitMs`; a holder that died stops refreshing the
// lock's mtime and loses it after `staleMs`; a live holder refreshes it every
// `staleMs / 3`, so a slow writer is never robbed.
import * as path from 'path';
import { EREMOTEIO, ErrnoError } from '../errno';

export const LOCK_NAME = 'clients.lock';

export interface LockOptions {
  /** How long to wait for the lock before giving up. */
  waitMs: number;
  /** Age of an unrefreshed lock after which its holder is taken for dead. */
  staleMs: number;
  /** Called when another process took our lock (we were stalled past staleMs). */
  onCompromised: (err: Error) => void;
}

export const DEFAULT_LOCK: Omit<LockOptions, 'onCompromised'> = { waitMs: 10_000, staleMs: 4_000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Take the lock; resolves to its release function. */
export async function acquireLock(dir: string, opts: LockOptions): Promise<() => Promise<void>> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lockfile = require('proper-lockfile') as typeof import('proper-lockfile');
  const deadline = Date.now() + opts.waitMs;
  const staleMs = Math.max(2000, opts.staleMs);
  let pause = 1;
  for (;;) {
    try {
      return await lockfile.lock(dir, {
        lockfilePath: path.join(dir, LOCK_NAME),
        realpath: false,
        retries: 0,
        stale: staleMs,
        update: Math.max(1000, Math.floor(staleMs / 3)),
        onCompromised: opts.onCompromised,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      if (Date.now() >= deadline) {
        throw new ErrnoError(EREMOTEIO, `timed out after ${opts.waitMs} ms waiting for ${path.join(dir, LOCK_NAME)}`);
      }
      await sleep(pause + Math.random() * pause);
      pause = Math.min(pause * 2, 50);
    }
  }
}
