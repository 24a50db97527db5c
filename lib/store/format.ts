// The store's text formats (FORMAT_VERSION 2; version 1 files, written before
// the cld daemon, are read as well). Every line ends in a space and the CRC-32
// of everything before that space, as 8 lowercase hex digits, so a torn or
// damaged line is recognised on its own. Pure: no I/O here.
//
// clients.snap, sorted the way `LC_ALL=C sort` sorts it:
//   #nfsdcltrack-snapshot v2 gen=<16 digits> records=<10> v40=<10> times=<10> current=<16> recovery=<16> <crc>
//   <hexid|-> <time> <sess 0|1> <epoch> <princhash|-> <older epoch|-> <older princhash|-> <crc>   one per client, by id
//   ~ <time, 11 digits> <count, 10 digits> <crc>        session clients with time <= <time>
// clients.journal, append-only:
//   #nfsdcltrack-journal v2 gen=<gen> <crc>
//   <gen> <seq> set <hexid|-> <state> <prev state> <crc>
//   <gen> <seq> del <hexid|-> - - - - - - <prev state> <crc>
//   <gen> <seq> lost - - - - - - - - - - - - - <crc>     barrier: what came before is unproven
//   <gen> <seq> grace - <current epoch> <recovery epoch> <crc>
// where a state is "<time> <sess> <epoch> <princhash|-> <older epoch|-> <older princhash|->"
// and "- - - - - -" for none. Version 1 lines lack the epoch fields (a record
// line is "<hexid|-> <time> <sess>", a state "<time> <sess>"): they are read
// as members of epoch 1, the epoch a store starts in, with no princhash.
//
// The store's identity (clients.id) and its travels (clients.served) are
// files of their own (identity.ts), outside this versioning: adding them
// changed neither file's version, and a store without them (older) is read
// as before and gets its id at its next init or compaction.
//
// Epochs are nfsdcld's (lib/tracking.ts): a client is recorded in the
// current epoch and, during grace, may also be in the recovery epoch. A
// membership in any other epoch is dead, and so is a record with no live one.
import { crc32, crc32Bytes, crcHex } from '../crc32';

export const FORMAT_VERSION = 2;
/** Versions this code reads. */
const READ_VERSIONS = ['v1', 'v2'];
/** Latest time a record may carry: 11 digits, year 5138. */
export const MAX_TIME = 99_999_999_999;

/** A client's place in one of nfsdcld's epochs (its rec-<epoch> table). */
export interface Membership {
  epoch: number;
  /** SHA-256 of the client's Kerberos principal, as 64 hex digits; null when none was given. */
  ph: string | null;
}
export interface RecState {
  time: number;
  session: boolean;
  /** The epoch of its latest create (default 1: version 1 records), with its princhash (default null). */
  epoch?: number;
  ph?: string | null;
  /** Its membership in an older epoch, kept while that epoch may still be live (recovery). */
  older?: Membership | null;
}
export interface Epochs {
  current: number;
  /** 0 when not in grace. */
  recovery: number;
}
export const INITIAL_EPOCHS: Epochs = { current: 1, recovery: 0 };
export interface ClientRecord extends RecState {
  id: string;
}

export interface SnapshotHeader {
  version: number;
  gen: number;
  records: number;
  v40: number;
  times: number;
  /** The epochs at the time the snapshot was written (version 1: INITIAL_EPOCHS). */
  epochs: Epochs;
}
export interface JournalHeader {
  version: number;
  gen: number;
}
export type JournalOp = 'set' | 'del' | 'lost' | 'grace';
export interface JournalEntry {
  gen: number;
  seq: number;
  op: JournalOp;
  id: string;
  /** New state for `set`; null for `del` and `lost`. */
  state: RecState | null;
  /** State the writer saw before this entry (null: absent). */
  prev: RecState | null;
  /** The new epochs, for `grace`. */
  epochs?: Epochs;
}

const sameMembership = (a: Membership | null | undefined, b: Membership | null | undefined): boolean =>
  (a ?? null) === (b ?? null) || (!!a && !!b && a.epoch === b.epoch && a.ph === b.ph);

/** Do two states say the same? (Absent epoch fields mean their defaults.) */
export function sameState(a: RecState | null, b: RecState | null): boolean {
  return (
    a === b ||
    (a !== null &&
      b !== null &&
      a.time === b.time &&
      a.session === b.session &&
      (a.epoch ?? 1) === (b.epoch ?? 1) &&
      (a.ph ?? null) === (b.ph ?? null) &&
      sameMembership(a.older, b.older))
  );
}

export function seal(body: string): string {
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
export function encodeSnapshotHeader(h: Omit<SnapshotHeader, 'version' | 'epochs'> & { epochs?: Epochs }): string {
  const ep = h.epochs ?? INITIAL_EPOCHS;
  return seal(
    `#nfsdcltrack-snapshot v${FORMAT_VERSION} gen=${pad(h.gen, 16)} records=${pad(h.records, 10)} ` +
      `v40=${pad(h.v40, 10)} times=${pad(h.times, 10)} current=${pad(ep.current, 16)} recovery=${pad(ep.recovery, 16)}`,
  );
}
export const SNAPSHOT_HEADER_BYTES = encodeSnapshotHeader({ gen: 0, records: 0, v40: 0, times: 0 }).length;

export function decodeSnapshotHeader(line: string): SnapshotHeader | null {
  const body = unseal(line);
  if (body === null) return null;
  const f = body.split(' ');
  const version = READ_VERSIONS.indexOf(f[1]) + 1;
  if (f[0] !== '#nfsdcltrack-snapshot' || version === 0 || f.length !== (version === 1 ? 6 : 8)) return null;
  const gen = parseKeyed(f[2], 'gen');
  const records = parseKeyed(f[3], 'records');
  const v40 = parseKeyed(f[4], 'v40');
  const times = parseKeyed(f[5], 'times');
  if (gen === null || records === null || v40 === null || times === null || v40 > records) return null;
  if (version === 1) return { version, gen, records, v40, times, epochs: INITIAL_EPOCHS };
  const current = parseKeyed(f[6], 'current');
  const recovery = parseKeyed(f[7], 'recovery');
  if (current === null || recovery === null || !validEpochs({ current, recovery })) return null;
  return { version, gen, records, v40, times, epochs: { current, recovery } };
}

/** The current epoch is at least 1, and the recovery epoch, when there is one, older. */
export const validEpochs = (e: Epochs): boolean => e.current >= 1 && e.recovery < e.current;

const epochFields = (s: RecState): string => {
  const o = s.older;
  return `${s.epoch ?? 1} ${s.ph ?? '-'} ${o ? o.epoch : '-'} ${o ? (o.ph ?? '-') : '-'}`;
};

export function encodeRecord(r: ClientRecord): string {
  return seal(`${idField(r.id)} ${r.time} ${r.session ? 1 : 0} ${epochFields(r)}`);
}

const PH_CHARS = 64;

/**
 * A record line's fields, decoded in place as offsets into its bytes: one is
 * reused for every line of a pass over the snapshot (compaction, a grace
 * start), which then builds nothing per record that it does not need.
 */
export interface RecordFields {
  /** The sort key (the id field as written: "-" for the empty id) ends here; it starts at the line. */
  keyEnd: number;
  /** The id as hex digits: [idStart, idEnd), empty for the empty id. */
  idStart: number;
  idEnd: number;
  time: number;
  session: boolean;
  epoch: number;
  /** Where the epoch's princhash (64 hex digits) starts; -1 for none. */
  ph: number;
  /** The older membership's epoch; 0 for none. */
  olderEpoch: number;
  olderPh: number;
  /** A version 1 line (no epoch fields). */
  v1: boolean;
}

export const newRecordFields = (): RecordFields => ({ keyEnd: 0, idStart: 0, idEnd: 0, time: 0, session: false, epoch: 1, ph: -1, olderEpoch: 0, olderPh: -1, v1: false });

/** HEX[c] is 1 for a lowercase hex digit: one load a byte, where four comparisons were a third of a grace start's pass. */
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdef') HEX[c.charCodeAt(0)] = 1;

/** The end of the run of lowercase hex digits at b[i], before `to`. */
function hexEnd(b: Uint8Array, i: number, to: number): number {
  while (i < to && HEX[b[i]] === 1) i++;
  return i;
}

/** The end of the run of decimal digits at b[i], before `to`. */
function digitsEnd(b: Uint8Array, i: number, to: number): number {
  while (i < to && (b[i] - 48) >>> 0 <= 9) i++;
  return i;
}

/** True for 2 to 2048 lowercase hex digits, an even number of them, b[from..to). */
function isHexAt(b: Uint8Array, from: number, to: number): boolean {
  const n = to - from;
  return n >= 2 && n <= 2048 && (n & 1) === 0 && hexEnd(b, from, to) === to;
}

/**
 * The princhash field that starts at b[i] (fields are read by position, each
 * scanned once): -1 for "-" (none), i for 64 lowercase hex digits, -2 for
 * neither. It ends at phEnd(); the caller checks what follows.
 */
function phAt(b: Uint8Array, i: number, to: number): number {
  if (i < to && b[i] === 45) return -1;
  return hexEnd(b, i, Math.min(to, i + PH_CHARS)) === i + PH_CHARS ? i : -2;
}
const phEnd = (ph: number, i: number): number => (ph === -1 ? i + 1 : i + PH_CHARS);

/**
 * The epoch fields "<epoch> <ph|-> <older epoch|-> <older ph|->" of b[from..to)
 * into f; false when malformed. The older membership is older than the epoch.
 */
function epochsAt(b: Uint8Array, from: number, to: number, f: RecordFields): boolean {
  const p = digitsEnd(b, from, to);
  const epoch = numberAt(b, from, p);
  if (p >= to || b[p] !== 32 || epoch === null || epoch < 1) return false;
  const ph = phAt(b, p + 1, to);
  const q = phEnd(ph, p + 1);
  if (ph === -2 || q >= to || b[q] !== 32) return false;
  f.epoch = epoch;
  f.ph = ph;
  if (b[q + 1] === 45) {
    f.olderEpoch = 0;
    f.olderPh = -1;
    return q + 4 === to && b[q + 2] === 32 && b[q + 3] === 45;
  }
  const r = digitsEnd(b, q + 1, to);
  const oe = numberAt(b, q + 1, r);
  if (r >= to || b[r] !== 32 || oe === null || oe < 1 || oe >= epoch) return false;
  const oph = phAt(b, r + 1, to);
  if (oph === -2 || phEnd(oph, r + 1) !== to) return false;
  f.olderEpoch = oe;
  f.olderPh = oph;
  return true;
}

/** Is b[from..to) a sealed line (body, space, CRC-32 as 8 lowercase hex digits)? Returns the space's offset, or -1. */
function sealedAt(b: Buffer, from: number, to: number): number {
  const sp = to - 9;
  if (sp < from || b[sp] !== 32) return -1;
  let crc = 0;
  for (let i = sp + 1; i < to; i++) {
    const c = b[i];
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    crc = crc * 16 + d;
  }
  return crc32Bytes(b, from, sp) === crc ? sp : -1;
}

/**
 * The record line b[from..to) (without its newline), checked and decoded
 * into f, with no string or object made; false when damaged. Each field is
 * scanned once, from its start to the delimiter it must end at, and the CRC
 * is checked last. A version 1 line (no epoch fields) is a member of epoch 1.
 */
export function decodeRecordAt(b: Buffer, from: number, to: number, f: RecordFields): boolean {
  const body = to - 9;
  if (body <= from || b[body] !== 32) return false;
  let idEnd: number;
  if (b[from] === 45) {
    idEnd = from + 1;
    f.idEnd = from;
  } else {
    idEnd = hexEnd(b, from, body);
    const n = idEnd - from;
    if (n < 2 || n > 2048 || (n & 1) !== 0) return false;
    f.idEnd = idEnd;
  }
  if (b[idEnd] !== 32) return false;
  const tEnd = digitsEnd(b, idEnd + 1, body);
  const time = numberAt(b, idEnd + 1, tEnd);
  if (b[tEnd] !== 32 || tEnd + 2 > body || time === null || time > MAX_TIME) return false;
  const sess = b[tEnd + 1];
  if (sess !== 48 && sess !== 49) return false;
  f.keyEnd = idEnd;
  f.idStart = from;
  f.time = time;
  f.session = sess === 49;
  f.v1 = tEnd + 2 === body;
  if (f.v1) {
    f.epoch = 1;
    f.ph = -1;
    f.olderEpoch = 0;
    f.olderPh = -1;
  } else if (b[tEnd + 2] !== 32 || !epochsAt(b, tEnd + 3, body, f)) {
    return false;
  }
  return sealedAt(b, from, to) === body;
}

const phOf = (b: Buffer, at: number): string | null => (at < 0 ? null : b.toString('latin1', at, at + PH_CHARS));

/** The record decodeRecordAt found, as an object. */
export function recordOf(b: Buffer, f: RecordFields): ClientRecord {
  return {
    id: f.idEnd === f.idStart ? '' : b.toString('latin1', f.idStart, f.idEnd),
    time: f.time,
    session: f.session,
    epoch: f.epoch,
    ph: phOf(b, f.ph),
    older: f.olderEpoch === 0 ? null : { epoch: f.olderEpoch, ph: phOf(b, f.olderPh) },
  };
}

/** A record line as text (latin1, no newline); null when damaged. */
export function decodeRecord(line: string): ClientRecord | null {
  // A character past latin1 cannot come from a file read as latin1 (nor pass for a byte).
  if (/[^\x00-\xff]/.test(line)) return null;
  const b = Buffer.from(line, 'latin1');
  const f = newRecordFields();
  return decodeRecordAt(b, 0, b.length, f) ? recordOf(b, f) : null;
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
  const version = READ_VERSIONS.indexOf(f[1]) + 1;
  if (f.length !== 3 || f[0] !== '#nfsdcltrack-journal' || version === 0 || gen === null) return null;
  return { version, gen };
}

const NO_STATE = '- - - - - -';
const stateFields = (s: RecState | null): string => (s ? `${s.time} ${s.session ? 1 : 0} ${epochFields(s)}` : NO_STATE);

export function encodeJournalEntry(e: JournalEntry): string {
  if (e.op === 'grace') return seal(`${e.gen} ${e.seq} grace - ${e.epochs!.current} ${e.epochs!.recovery}`);
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

const isDash = (b: Uint8Array, from: number, to: number): boolean => to - from === 1 && b[from] === 45;

/**
 * A state at b[from..to): "<time> <0|1>" (version 1) or that and the four
 * epoch fields; "- -" or "- - - - - -" for none. `spaces` are the positions of
 * the spaces inside it. Undefined when malformed.
 */
function stateAt(b: Buffer, from: number, to: number, spaces: number[]): RecState | null | undefined {
  const n = spaces.length;
  if (n !== 1 && n !== 5) return undefined;
  const f = (i: number): [number, number] => [i === 0 ? from : spaces[i - 1] + 1, i === n ? to : spaces[i]];
  let dashes = 0;
  for (let i = 0; i <= n; i++) if (isDash(b, ...f(i))) dashes++;
  if (dashes === n + 1) return null;
  const [t0, t1] = f(0);
  const [s0, s1] = f(1);
  const time = numberAt(b, t0, t1);
  const s = s1 - s0 === 1 ? b[s0] : 0;
  if (time === null || time > MAX_TIME || (s !== 48 && s !== 49)) return undefined;
  const state: RecState = { time, session: s === 49, epoch: 1, ph: null, older: null };
  if (n === 1) return state;
  const e = newRecordFields();
  if (!epochsAt(b, spaces[1] + 1, to, e)) return undefined;
  state.epoch = e.epoch;
  state.ph = phOf(b, e.ph);
  state.older = e.olderEpoch === 0 ? null : { epoch: e.olderEpoch, ph: phOf(b, e.olderPh) };
  return state;
}

function opAt(b: Uint8Array, from: number, to: number): JournalOp | null {
  for (const op of ['set', 'del', 'lost', 'grace'] as const) {
    let i = 0;
    while (i < op.length && b[from + i] === op.charCodeAt(i)) i++;
    if (i === op.length && from + i === to) return op;
  }
  return null;
}

/** The id field b[from..to): "-" for the empty id, or 1 to 1024 bytes in lowercase hex. */
function idAt(b: Buffer, from: number, to: number): string | null {
  if (isDash(b, from, to)) return '';
  return isHexAt(b, from, to) ? b.toString('latin1', from, to) : null;
}

/** The entry line b[from..to) (without its newline), checked and decoded by scanning it once; null when damaged. */
export function decodeJournalEntryAt(b: Buffer, from: number, to: number): JournalEntry | null {
  const sp = sealedAt(b, from, to);
  if (sp < 0) return null;
  // Spaces between the body's fields: gen, seq, op, id, then the two states
  // (2 fields each in version 1, 6 in version 2) or a grace entry's epochs.
  const spaces: number[] = [];
  for (let i = b.indexOf(32, from); i >= 0 && i < sp && spaces.length < 16; i = b.indexOf(32, i + 1)) spaces.push(i);
  if (spaces.length < 5 || spaces[0] === from) return null;
  for (let i = 1; i < spaces.length; i++) if (spaces[i] === spaces[i - 1] + 1) return null;
  if (spaces[spaces.length - 1] + 1 >= sp) return null;
  const gen = numberAt(b, from, spaces[0]);
  const seq = numberAt(b, spaces[0] + 1, spaces[1]);
  const op = opAt(b, spaces[1] + 1, spaces[2]);
  const id = idAt(b, spaces[2] + 1, spaces[3]);
  if (gen === null || seq === null || op === null || id === null) return null;
  if (op === 'grace') {
    if (spaces.length !== 5 || id !== '') return null;
    const current = numberAt(b, spaces[3] + 1, spaces[4]);
    const recovery = numberAt(b, spaces[4] + 1, sp);
    if (current === null || recovery === null || !validEpochs({ current, recovery })) return null;
    return { gen, seq, op, id, state: null, prev: null, epochs: { current, recovery } };
  }
  const per = spaces.length === 7 ? 2 : spaces.length === 15 ? 6 : 0;
  if (per === 0) return null;
  const mid = spaces[3 + per];
  const state = stateAt(b, spaces[3] + 1, mid, spaces.slice(4, 3 + per));
  const prev = stateAt(b, mid + 1, sp, spaces.slice(4 + per));
  if (state === undefined || prev === undefined) return null;
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
