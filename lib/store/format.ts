// The store's text formats (FORMAT_VERSION 1). Every line ends in a space and
// the CRC-32 of everything before that space, as 8 lowercase hex digits, so a
// torn or damaged line is recognised on its own. Pure: no I/O here.
//
// clients.snap, sorted the way `LC_ALL=C sort` sorts it:
//   #nfsdcltrack-snapshot v1 gen=<16 digits> records=<10> v40=<10> times=<10> <crc>
//   <hexid|-> <time> <has_session 0|1> <crc>          one per client, by id
//   ~ <time, 11 digits> <count, 10 digits> <crc>        session clients with time <= <time>
// clients.journal, append-only:
//   #nfsdcltrack-journal v1 gen=<gen> <crc>
//   <gen> <seq> set <hexid|-> <time> <sess> <prevtime|-> <prevsess|-> <crc>
//   <gen> <seq> del <hexid|-> - - <prevtime|-> <prevsess|-> <crc>
//   <gen> <seq> lost - - - - - <crc>     barrier: what came before is unproven
import { crc32, crc32Bytes, crcHex } from '../crc32';

export const FORMAT_VERSION = 1;
/** Latest time a record may carry: 11 digits, year 5138. */
export const MAX_TIME = 99_999_999_999;

export interface RecState {
  time: number;
  session: boolean;
}
export interface ClientRecord extends RecState {
  id: string;
}

export interface SnapshotHeader {
  version: number;
  gen: number;
  records: number;
  v40: number;
  times: number;
}
export interface JournalHeader {
  version: number;
  gen: number;
}
export type JournalOp = 'set' | 'del' | 'lost';
export interface JournalEntry {
  gen: number;
  seq: number;
  op: JournalOp;
  id: string;
  /** New state for `set`; null for `del` and `lost`. */
  state: RecState | null;
  /** State the writer saw before this entry (null: absent). */
  prev: RecState | null;
}

function seal(body: string): string {
  return `${body} ${crcHex(body)}\n`;
}

const CRC_FIELD = /^[0-9a-f]{8}$/;

/**
 * Where the body of a sealed line ends (the space before its CRC), or -1 if
 * the CRC fails. Without split or string building: compaction checks every
 * line of the snapshot this way.
 */
function sealedEnd(line: string): number {
  const sp = line.length - 9;
  if (sp < 0 || line.charCodeAt(sp) !== 32) return -1;
  const field = line.slice(sp + 1);
  return CRC_FIELD.test(field) && crc32(line, 0, sp) === parseInt(field, 16) ? sp : -1;
}

/** The body of a sealed line (without CRC and newline), or null if the CRC fails. */
export function unseal(line: string): string | null {
  const sp = sealedEnd(line);
  return sp < 0 ? null : line.slice(0, sp);
}

const idField = (id: string): string => (id === '' ? '-' : id);
const pad = (n: number, w: number): string => String(n).padStart(w, '0');

/** True for 2 to 2048 lowercase hex digits, an even number of them, from..to. */
function isIdText(s: string, from: number, to: number): boolean {
  const n = to - from;
  if (n < 2 || n > 2048 || (n & 1) !== 0) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}
/** 1 to 16 decimal digits of s[from..to), or null. */
function digits(s: string, from: number, to: number): number | null {
  if (to - from < 1 || to - from > 16) return null;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  return n;
}
function parseCount(f: string | undefined): number | null {
  return f === undefined ? null : digits(f, 0, f.length);
}
function parseTime(f: string | undefined): number | null {
  const n = parseCount(f);
  return n !== null && n <= MAX_TIME ? n : null;
}
function parseKeyed(f: string | undefined, key: string): number | null {
  return f !== undefined && f.startsWith(key + '=') ? parseCount(f.slice(key.length + 1)) : null;
}

// --- snapshot ---------------------------------------------------------------

/** Fixed width, so a streaming writer can fill it in after the records. */
export function encodeSnapshotHeader(h: Omit<SnapshotHeader, 'version'>): string {
  return seal(
    `#nfsdcltrack-snapshot v${FORMAT_VERSION} gen=${pad(h.gen, 16)} records=${pad(h.records, 10)} ` +
      `v40=${pad(h.v40, 10)} times=${pad(h.times, 10)}`,
  );
}
export const SNAPSHOT_HEADER_BYTES = encodeSnapshotHeader({ gen: 0, records: 0, v40: 0, times: 0 }).length;

export function decodeSnapshotHeader(line: string): SnapshotHeader | null {
  const body = unseal(line);
  if (body === null) return null;
  const f = body.split(' ');
  if (f.length !== 6 || f[0] !== '#nfsdcltrack-snapshot' || f[1] !== `v${FORMAT_VERSION}`) return null;
  const gen = parseKeyed(f[2], 'gen');
  const records = parseKeyed(f[3], 'records');
  const v40 = parseKeyed(f[4], 'v40');
  const times = parseKeyed(f[5], 'times');
  if (gen === null || records === null || v40 === null || times === null || v40 > records) return null;
  return { version: FORMAT_VERSION, gen, records, v40, times };
}

export function encodeRecord(r: ClientRecord): string {
  return seal(`${idField(r.id)} ${r.time} ${r.session ? 1 : 0}`);
}


/**
 * A record line, checked and decoded without split, regex or intermediate
 * strings (only the id): compaction decodes every line of the snapshot, and
 * the garbage of 100,000 naive decodes made up half the process's peak memory.
 */
export function decodeRecord(line: string): ClientRecord | null {
  const sp = sealedEnd(line);
  if (sp < 5 || line.charCodeAt(sp - 2) !== 32) return null;
  const sess = line.charCodeAt(sp - 1);
  if (sess !== 48 && sess !== 49) return null;
  const tEnd = sp - 2;
  const idEnd = line.lastIndexOf(' ', tEnd - 1);
  const time = idEnd < 1 ? null : digits(line, idEnd + 1, tEnd);
  if (time === null || time > MAX_TIME) return null;
  let id: string;
  if (idEnd === 1 && line.charCodeAt(0) === 45) id = '';
  else if (isIdText(line, 0, idEnd)) id = line.slice(0, idEnd);
  else return null;
  return { id, time, session: sess === 49 };
}


/** The sort key of a record line (its first field), without decoding it. */
export function recordKey(line: string): string {
  const sp = line.indexOf(' ');
  return sp < 0 ? line : line.slice(0, sp);
}
export const keyOf = idField;

export const TIME_LINE_BYTES = 34;
export function encodeTimeLine(time: number, count: number): string {
  return seal(`~ ${pad(time, 11)} ${pad(count, 10)}`);
}
/** Decoders take a line without its newline. */
export function decodeTimeLine(line: string): { time: number; count: number } | null {
  if (line.length !== TIME_LINE_BYTES - 1) return null;
  const body = unseal(line);
  if (body === null) return null;
  const f = body.split(' ');
  const time = parseTime(f[1]);
  const count = parseCount(f[2]);
  return f.length === 3 && f[0] === '~' && time !== null && count !== null ? { time, count } : null;
}

// --- journal ----------------------------------------------------------------

export function encodeJournalHeader(gen: number): string {
  return seal(`#nfsdcltrack-journal v${FORMAT_VERSION} gen=${gen}`);
}
export function decodeJournalHeader(line: string): JournalHeader | null {
  const body = unseal(line);
  if (body === null) return null;
  const f = body.split(' ');
  const gen = parseKeyed(f[2], 'gen');
  if (f.length !== 3 || f[0] !== '#nfsdcltrack-journal' || f[1] !== `v${FORMAT_VERSION}` || gen === null) return null;
  return { version: FORMAT_VERSION, gen };
}

const stateFields = (s: RecState | null): string => (s ? `${s.time} ${s.session ? 1 : 0}` : '- -');

export function encodeJournalEntry(e: JournalEntry): string {
  const id = e.op === 'lost' ? '-' : idField(e.id);
  return seal(`${e.gen} ${e.seq} ${e.op} ${id} ${stateFields(e.state)} ${stateFields(e.prev)}`);
}

// Entries are decoded from the file's bytes: every upcall checks its whole
// journal, in cold code, where indexing a Buffer is a load but charCodeAt is a
// call (a 25 KiB journal, cold: 1.9 ms decoded as text, 1.65 ms as bytes).

/** Decimal digits b[from..to), 1 to 16 of them, or null. */
function numberAt(b: Uint8Array, from: number, to: number): number | null {
  let n = to - from >= 1 && to - from <= 16 ? 0 : null;
  for (let i = from; i < to && n !== null; i++) n = b[i] >= 48 && b[i] <= 57 ? n * 10 + (b[i] - 48) : null;
  return n;
}

/** The two state fields at b[from..to): "<time> <0|1>", "- -", or undefined when malformed. */
function stateAt(b: Uint8Array, from: number, to: number): RecState | null | undefined {
  if (to - from < 3 || b[to - 2] !== 32) return undefined;
  const s = b[to - 1];
  if (to - from === 3 && b[from] === 45) return s === 45 ? null : undefined;
  const time = numberAt(b, from, to - 2);
  return time === null || time > MAX_TIME || (s !== 48 && s !== 49) ? undefined : { time, session: s === 49 };
}

function opAt(b: Uint8Array, from: number, to: number): JournalOp | null {
  for (const op of ['set', 'del', 'lost'] as const) {
    let i = 0;
    while (i < op.length && b[from + i] === op.charCodeAt(i)) i++;
    if (i === op.length && from + i === to) return op;
  }
  return null;
}

/** The id field b[from..to): "-" for the empty id, or 1 to 1024 bytes in lowercase hex. */
function idAt(b: Buffer, from: number, to: number): string | null {
  if (to - from === 1 && b[from] === 45) return '';
  if (to - from < 2 || to - from > 2048 || ((to - from) & 1) !== 0) return null;
  for (let i = from; i < to; i++) {
    const c = b[i]; // lowercase hex, inline: a call per byte costs more than the test
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return null;
  }
  return b.toString('latin1', from, to);
}

/** The entry line b[from..to) (without its newline), checked and decoded by scanning it once; null when damaged. */
export function decodeJournalEntryAt(b: Buffer, from: number, to: number): JournalEntry | null {
  const sp = to - 9;
  if (sp < from || b[sp] !== 32) return null;
  let crc = 0;
  for (let i = sp + 1; i < to; i++) {
    const c = b[i];
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return null;
    crc = crc * 16 + d;
  }
  if (crc32Bytes(b, from, sp) !== crc) return null;
  // Spaces after gen, seq, op, id, time and session; the prev state follows.
  const e1 = b.indexOf(32, from);
  const e2 = b.indexOf(32, e1 + 1);
  const e3 = b.indexOf(32, e2 + 1);
  const e4 = b.indexOf(32, e3 + 1);
  const e5 = b.indexOf(32, e4 + 1);
  const e6 = b.indexOf(32, e5 + 1);
  if (!(from < e1 && e1 < e2 && e2 < e3 && e3 < e4 && e4 < e5 && e5 < e6 && e6 < sp)) return null;
  const gen = numberAt(b, from, e1);
  const seq = numberAt(b, e1 + 1, e2);
  const op = opAt(b, e2 + 1, e3);
  const id = idAt(b, e3 + 1, e4);
  const state = stateAt(b, e4 + 1, e6);
  const prev = stateAt(b, e6 + 1, sp);
  if (gen === null || seq === null || op === null || id === null || state === undefined || prev === undefined) return null;
  if (op === 'set' && state !== null) return { gen, seq, op, id, state, prev };
  if (op === 'del' && state === null) return { gen, seq, op, id, state, prev };
  if (op === 'lost' && state === null && prev === null && id === '') return { gen, seq, op, id, state, prev };
  return null;
}

/** An entry line as text (latin1, no newline); null when damaged. */
export function decodeJournalEntry(line: string): JournalEntry | null {
  // A character past latin1 cannot come from a file read as latin1 (nor pass for a byte).
  if (/[^\x00-\xff]/.test(line)) return null;
  return decodeJournalEntryAt(Buffer.from(line, 'latin1'), 0, line.length);
}
