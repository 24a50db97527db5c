// Ending the grace period early (SPEC §4) and reading NFSDCLTRACK_GRACE_START.
import * as fs from 'fs';
import { crashPoint } from './crashpoint';
import { strtol } from './strtol';

export const END_GRACE_FILE = '/proc/fs/nfsd/v4_end_grace';

const LONG_MAX = (1n << 63n) - 1n;

/**
 * The server's boot time, or null when absent or unparseable ("don't know").
 * Like the C program, trailing garbage is ignored, and LONG_MAX (what strtol
 * returns on overflow, and the C program's own "unknown") means unknown too.
 */
export function parseGraceStart(value: string | undefined): number | null {
  if (value === undefined) return null;
  const r = strtol(value);
  return r.converted && !r.range && r.value !== LONG_MAX ? Number(r.value) : null;
}

/** Tell the kernel it may lift grace. A missing file is silent; other failures warn. */
export async function liftGrace(file: string, warn: (msg: string) => void): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warn(`Unable to open ${file}: ${(e as Error).message}`);
    return;
  }
  try {
    fs.writeSync(fd, 'Y');
    await crashPoint('end-grace-written');
  } catch (e) {
    warn(`Unable to write to ${file}: ${(e as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}
