// Named points on the write path where fault-injection tests stop the
// program: NFSDCLTRACK_CRASH_AT=<point> kills the process with SIGKILL there;
// <point>:<ms> pauses it there for that long instead (a slow but live writer).
// Unset (always, under the kernel), a point costs one comparison.
export type CrashPoint =
  | 'lock-taken'
  | 'journal-repaired'
  | 'journal-written'
  | 'journal-fsynced'
  | 'snapshot-temp-written'
  | 'snapshot-renamed'
  | 'dir-fsynced'
  | 'journal-reset'
  | 'store-created'
  | 'lock-released'
  | 'legacy-inserted'
  | 'legacy-removed'
  | 'end-grace-written';

let spec: string | undefined | null = null;

export function crashPoint(point: CrashPoint): Promise<void> | undefined {
  if (spec === null) spec = process.env.NFSDCLTRACK_CRASH_AT || undefined;
  if (spec === undefined || !spec.startsWith(point)) return undefined;
  const rest = spec.slice(point.length);
  if (rest === '') process.kill(process.pid, 'SIGKILL');
  if (rest.startsWith(':')) return new Promise((resolve) => setTimeout(resolve, Number(rest.slice(1)) || 0));
  return undefined;
}
