// Named points on the write path where fault-injection tests stop the
// program: NFSDCLTRACK_CRASH_AT=<point> kills the process with SIGKILL there;
// <point>:<ms> pauses it there for that long instead, on a timer (the event
// loop runs meanwhile); <point>:block:<ms> blocks the thread there, as a
// system call stuck on a slow disk does (no timer, no heartbeat, can run).
// NFSDCLTRACK_CRASH_AT=trace lists the points passed on stderr.
// Unset (always, under the kernel), a point costs one comparison.
import { writeSync } from 'fs';
export const CRASH_POINTS = [
  'lock-taken',
  'journal-repaired',
  'journal-replaced',
  'journal-torn',
  'store-snapshot-created',
  'journal-written',
  'journal-fsynced',
  'compaction-started',
  'snapshot-temp-written',
  'snapshot-renamed',
  'dir-fsynced',
  'journal-reset',
  'store-created',
  'lock-released',
  'legacy-inserted',
  'legacy-removed',
  'end-grace-written',
  'cld-committed',
  'cld-grace-started',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

let spec: string | undefined | null = null;

function armed(point: CrashPoint): string | undefined {
  if (spec === null) spec = process.env.NFSDCLTRACK_CRASH_AT || undefined;
  if (spec === undefined) return undefined;
  if (spec === 'trace') {
    // Tests list the points a command passes: one line each on stderr.
    try {
      writeSync(2, `crashpoint ${point}\n`);
    } catch {
      /* no stderr */
    }
    return undefined;
  }
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  return name === point ? spec.slice(name.length) : undefined;
}

/** Is a kill (not a pause) armed at this point? For hooks that must act before it. */
export function crashArmed(point: CrashPoint): boolean {
  return armed(point) === '';
}

export function crashPoint(point: CrashPoint): Promise<void> | undefined {
  const rest = armed(point);
  if (rest === undefined) return undefined;
  if (rest === '') process.kill(process.pid, 'SIGKILL');
  if (rest.startsWith(':block:')) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(rest.slice(7)) || 0);
    return undefined;
  }
  if (rest.startsWith(':')) return new Promise((resolve) => setTimeout(resolve, Number(rest.slice(1)) || 0));
  return undefined;
}
