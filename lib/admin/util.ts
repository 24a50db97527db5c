// Shared helpers of the administrator commands: output for people (aligned
// columns, no colour), client ids shown as text where they are printable,
// times as ISO-8601 UTC, and the storage dir the commands work on.
import * as fs from 'fs';
import { loadTrackConfig } from '../config';
import { keyOf, sameState, type ClientRecord } from '../store/format';

/** Exit statuses of the admin commands (they never use the kernel's numbers). */
export const OK = 0;
export const PROBLEM = 1;
export const USAGE_ERROR = 2;

export class UsageError extends Error {}

/** Where a command writes; tests replace it. */
export interface Out {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: Out = {
  out: (t) => writeFully(1, t),
  err: (t) => writeFully(2, t),
};

function writeFully(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  try {
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  } catch (e) {
    // A closed pipe (`nfsdcltrack list | head`) is not an error of ours.
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
  }
}

/**
 * The client id as text, when it is valid UTF-8 made only of printable
 * characters (Linux clients send strings like "Linux NFSv4.2 host"); null
 * otherwise. No control character ever reaches a terminal through this.
 */
export function printableId(hex: string): string | null {
  const bytes = Buffer.from(hex, 'hex');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  // C0 and C1 controls, DEL, and the line/paragraph separators.
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text) ? null : text;
}

export const versionOf = (session: boolean): '4.0' | '4.1+' => (session ? '4.1+' : '4.0');

/** ISO-8601 UTC, to the second: 2026-11-24T00:49:12Z. */
export function isoTime(epoch: number): string {
  const d = new Date(epoch * 1000);
  return Number.isNaN(d.getTime()) ? String(epoch) : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A compact age for people: 42s, 5m12s, 3h04m, 12d03h. */
export function age(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Rows as aligned columns, two spaces apart. Every column but the last is
 * padded to its widest cell, up to `cap` characters: one very long client id
 * (up to 2048 hex digits) must not push every other line off the screen.
 */
export function table(rows: readonly (readonly string[])[], cap = 72): string {
  if (rows.length === 0) return '';
  const n = Math.max(...rows.map((r) => r.length));
  const widths: number[] = [];
  for (let c = 0; c < n - 1; c++) {
    let w = 0;
    for (const r of rows) {
      const len = (r[c] ?? '').length;
      if (len <= cap && len > w) w = len;
    }
    widths.push(w);
  }
  let out = '';
  for (const r of rows) {
    let line = '';
    for (let c = 0; c < r.length; c++) {
      const cell = r[c];
      line += c < r.length - 1 ? cell.padEnd(widths[c]) + '  ' : cell;
    }
    out += line.trimEnd() + '\n';
  }
  return out;
}

/** Sort records the way the snapshot is sorted (`LC_ALL=C sort` of the key). */
export function sortRecords<T extends { id: string }>(recs: T[]): T[] {
  return recs.sort((a, b) => {
    const ka = keyOf(a.id);
    const kb = keyOf(b.id);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** Same client, same state (epochs and princhashes included). */
export function sameRecord(a: ClientRecord, b: ClientRecord): boolean {
  return a.id === b.id && sameState(a, b);
}

/** -s/--storagedir, else [nfsdcltrack] storagedir from nfs.conf, else the default. */
export function resolveStoragedir(
  given: string | undefined,
  env: Record<string, string | undefined>,
  warn: (m: string) => void,
  fallback: string,
): string {
  if (given !== undefined) return given;
  return loadTrackConfig(env, warn).storagedir ?? fallback;
}

/** Seconds since the epoch. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A time stamp for file names: 20261124T004912Z. */
export function fileStamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** The machine's boot time from /proc/stat (btime), or null. */
export function machineBootTime(): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
