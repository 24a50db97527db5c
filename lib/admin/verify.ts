// `verify`: check every line of the store (checksums, header counts, sort
// order, the time index, journal gen/seq continuity, the chain of prev
// states), and `verify --repair`: salvage what the store proves into a fresh
// snapshot, keep the damaged files aside, report what was lost.
import * as fs from 'fs';
import * as path from 'path';
import {
  decodeJournalEntry,
  decodeJournalHeader,
  decodeRecord,
  decodeSnapshotHeader,
  decodeTimeLine,
  keyOf,
  recordKey,
  sameState,
  unseal,
  type ClientRecord,
  type Epochs,
  type JournalEntry,
  type RecState,
  type SnapshotHeader,
} from '../store/format';
import { JOURNAL_NAME, SNAPSHOT_NAME, Store, type StoreView } from '../store/store';
import { isTornPrefix } from '../store/journal';
import { liveState } from '../tracking';
import { fileStamp, sortRecords } from './util';

export type Severity = 'error' | 'note';
export interface Finding {
  severity: Severity;
  file: string;
  /** 1-based line number, when the finding is about one line. */
  line?: number;
  what: string;
}

interface FileText {
  text: string;
  size: number;
  ino: number;
}

export interface SnapshotAnalysis {
  header: SnapshotHeader | null;
  /** Valid record lines by id, with their line numbers. */
  records: Map<string, { state: RecState; line: number }>;
  /** Ids seen on more than one valid line with different states: proven by none. */
  conflicting: Set<string>;
  /** Keys (first field) of damaged record lines: these clients are lost unless the journal proves them. */
  damagedKeys: string[];
  ino: number;
}

export interface JournalAnalysis {
  gen: number | null;
  entries: { entry: JournalEntry; line: number }[];
  damagedLines: number;
  /** Id fields read from damaged entry lines (themselves unverified). */
  damagedIds: string[];
  headerOnly: boolean;
  ino: number;
}

export interface Analysis {
  dir: string;
  findings: Finding[];
  snapshot: SnapshotAnalysis | null;
  journal: JournalAnalysis | null;
  /** Neither store file exists: nothing to check. */
  empty: boolean;
}

function readText(file: string): FileText | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return { text: buf.toString('latin1', 0, got), size: got, ino: st.ino };
  } finally {
    fs.closeSync(fd);
  }
}

/** Lines with their 1-based numbers; `partial` is an unterminated last line. */
function splitLines(text: string): { lines: string[]; partial: string } {
  const parts = text.split('\n');
  const partial = parts.pop() ?? '';
  return { lines: parts, partial };
}

const why = (line: string): string => (unseal(line) === null ? 'checksum mismatch' : 'malformed fields');
const fmtMembership = (epoch: number, ph: string | null | undefined): string => `epoch ${epoch}${ph ? ` princhash ${ph.slice(0, 8)}` : ''}`;
const fmtState = (s: RecState | null | undefined): string =>
  s ? `time ${s.time} ${s.session ? 'v4.1+' : 'v4.0'} ${fmtMembership(s.epoch ?? 1, s.ph)}${s.older ? ` and ${fmtMembership(s.older.epoch, s.older.ph)}` : ''}` : 'absent';
/** A record's state without its id. */
const stateOf = ({ id: _id, ...s }: ClientRecord): RecState => s;

function analyzeSnapshot(file: string, f: FileText, findings: Finding[]): SnapshotAnalysis {
  const err = (line: number | undefined, what: string) => findings.push({ severity: 'error', file, line, what });
  const { lines, partial } = splitLines(f.text);
  const res: SnapshotAnalysis = { header: null, records: new Map(), conflicting: new Set(), damagedKeys: [], ino: f.ino };
  let i = 0;
  if (lines.length > 0 && lines[0].startsWith('#')) {
    res.header = decodeSnapshotHeader(lines[0]);
    if (!res.header) err(1, `header damaged (${why(lines[0])})`);
    i = 1;
  } else {
    err(1, 'no header line');
  }
  const h0 = res.header;
  let prevKey: string | null = null;
  let prevLine = 0;
  let recordLines = 0;
  let v40 = 0;
  const sessionTimes = new Map<number, number>();
  const timeLines: { time: number; count: number; line: number }[] = [];
  for (; i < lines.length; i++) {
    const n = i + 1;
    const line = lines[i];
    if (line.startsWith('~')) {
      const t = decodeTimeLine(line);
      if (!t) err(n, `time index line damaged (${why(line)})`);
      else timeLines.push({ ...t, line: n });
      continue;
    }
    if (timeLines.length > 0) err(n, 'record line after the time index');
    const rec = decodeRecord(line);
    if (!rec) {
      err(n, `record damaged (${why(line)}); the client on it is lost unless the journal proves it`);
      const key = recordKey(line);
      res.damagedKeys.push(key === '-' ? '' : key);
      continue;
    }
    recordLines++;
    if (!rec.session) v40++;
    else sessionTimes.set(rec.time, (sessionTimes.get(rec.time) ?? 0) + 1);
    const key = keyOf(rec.id);
    if (prevKey !== null && key <= prevKey) {
      err(n, key === prevKey ? `duplicate client (also on line ${prevLine})` : `out of order (sorts before line ${prevLine})`);
    }
    if (h0 && rec.epoch! > h0.epochs.current) err(n, `client ${rec.id || '(empty id)'} is recorded in epoch ${rec.epoch}, after the current epoch ${h0.epochs.current}`);
    const seen = res.records.get(rec.id);
    if (seen && !sameState(seen.state, rec)) res.conflicting.add(rec.id);
    else if (!seen) res.records.set(rec.id, { state: stateOf(rec), line: n });
    if (prevKey === null || key > prevKey) {
      prevKey = key;
      prevLine = n;
    }
  }
  if (partial.length > 0) err(lines.length + 1, `incomplete last line (${partial.length} bytes, no newline)`);
  for (const id of res.conflicting) {
    err(res.records.get(id)!.line, `client ${id || '(empty id)'} appears more than once with different states: neither is proven`);
    res.records.delete(id);
  }
  const h = res.header;
  if (h) {
    if (h.records !== recordLines + res.damagedKeys.length) {
      err(1, `header says records=${h.records}, the file has ${recordLines + res.damagedKeys.length} record line(s)`);
    }
    if (res.damagedKeys.length === 0 && h.v40 !== v40) err(1, `header says v40=${h.v40}, the records have ${v40}`);
    if (h.times !== timeLines.length) err(1, `header says times=${h.times}, the file has ${timeLines.length} time index line(s)`);
  }
  // The time index: cumulative counts of session clients by time, ascending.
  if (res.damagedKeys.length === 0) {
    const expected = [...sessionTimes.keys()].sort((a, b) => a - b);
    let cum = 0;
    const want = expected.map((t) => ({ time: t, count: (cum += sessionTimes.get(t)!) }));
    for (let k = 0; k < Math.max(want.length, timeLines.length); k++) {
      const got = timeLines[k];
      const w = want[k];
      if (!got) {
        err(lines.length, `time index lacks an entry for time ${w.time} (count ${w.count})`);
        break;
      }
      if (!w || got.time !== w.time || got.count !== w.count) {
        err(got.line, w ? `time index says ${got.count} session client(s) up to time ${got.time}; the records say ${w.count} up to time ${w.time}` : `time index entry for time ${got.time} matches no record`);
        break;
      }
    }
  }
  return res;
}

function analyzeJournal(
  file: string,
  f: FileText,
  snap: SnapshotAnalysis | null,
  findings: Finding[],
): JournalAnalysis {
  const err = (line: number | undefined, what: string) => findings.push({ severity: 'error', file, line, what });
  const note = (line: number | undefined, what: string) => findings.push({ severity: 'note', file, line, what });
  const { lines, partial } = splitLines(f.text);
  const res: JournalAnalysis = { gen: null, entries: [], damagedLines: 0, damagedIds: [], headerOnly: false, ino: f.ino };
  let i = 0;
  if (lines.length > 0 && lines[0].startsWith('#')) {
    const h = decodeJournalHeader(lines[0]);
    if (!h) err(1, `header damaged (${why(lines[0])})`);
    else res.gen = h.gen;
    i = 1;
  } else {
    err(1, 'no header line');
  }
  const snapGen = snap?.header?.gen ?? null;
  // Whether the snapshot is the base this journal's prev states refer to.
  let stale = false;
  if (res.gen !== null && snapGen !== null) {
    if (res.gen < snapGen) {
      stale = true;
      note(1, `journal gen ${res.gen} predates snapshot gen ${snapGen}: a compaction was cut short; the store ignores this journal and the next writer resets it`);
    } else if (res.gen > snapGen) {
      err(1, `journal gen ${res.gen} is newer than snapshot gen ${snapGen}: the snapshot it extends is missing`);
    }
  }
  // The state each id had before the next entry, as a writer saw it: from the
  // snapshot until a line is lost; after that only ids touched since are known.
  const known = new Map<string, RecState | null>();
  let base: 'snapshot' | 'null' | 'unknown' = snap?.header && !stale && res.gen === snapGen ? 'snapshot' : 'unknown';
  let lastSeq = 0;
  // The epochs before the next entry, as far as known: the snapshot's, then
  // each grace entry's. (Impossible epochs make a grace line undecodable: damaged.)
  let epochs: Epochs | null = base === 'snapshot' ? snap!.header!.epochs : null;
  for (; i < lines.length; i++) {
    const n = i + 1;
    const e = decodeJournalEntry(lines[i]);
    if (!e) {
      err(n, `entry damaged (${why(lines[i])}); what it recorded is lost`);
      res.damagedLines++;
      // Its id field, as far as it can be read: a client whose fate is unknown.
      const f = lines[i].split(' ');
      if (f.length >= 4 && f[2] !== 'grace' && /^(?:[0-9a-f]{2})+$|^-$/.test(f[3])) res.damagedIds.push(f[3] === '-' ? '' : f[3]);
      known.clear();
      base = 'unknown';
      epochs = null;
      continue;
    }
    if (res.gen === null) res.gen = e.gen;
    if (e.gen !== res.gen) err(n, `entry gen ${e.gen} differs from the journal's gen ${res.gen}`);
    if (e.seq !== lastSeq + 1) {
      err(n, e.seq > lastSeq + 1 ? `seq ${e.seq} follows seq ${lastSeq}: ${e.seq - lastSeq - 1} entr${e.seq - lastSeq - 1 === 1 ? 'y is' : 'ies are'} missing` : `seq ${e.seq} follows seq ${lastSeq}: out of sequence`);
      known.clear();
      base = 'unknown';
      epochs = null;
    }
    lastSeq = e.seq;
    res.entries.push({ entry: e, line: n });
    if (e.op === 'lost') {
      note(n, 'barrier: a writer found the store damaged here; what came before is unproven');
      known.clear();
      base = 'null';
      continue;
    }
    if (e.op === 'grace') {
      const to = e.epochs!;
      if (epochs && to.current < epochs.current) err(n, `grace entry takes the current epoch back, from ${epochs.current} to ${to.current}`);
      // A recovery epoch is the one that was current at a grace start, or the one already in recovery.
      else if (epochs && to.recovery !== 0 && to.recovery !== epochs.current && to.recovery !== epochs.recovery) {
        err(n, `grace entry makes epoch ${to.recovery} the recovery epoch, but the epochs were current ${epochs.current}, recovery ${epochs.recovery}`);
      }
      epochs = to;
      continue;
    }
    if (e.op === 'set' && epochs && e.state!.epoch! > epochs.current) {
      err(n, `set of ${e.id || '(empty id)'} records it in epoch ${e.state!.epoch}, after the current epoch ${epochs.current}`);
    }
    let before: RecState | null | undefined = known.has(e.id) ? known.get(e.id) : undefined;
    if (before === undefined) {
      if (base === 'snapshot') {
        const s = snap!.records.get(e.id);
        before = s ? s.state : snap!.damagedKeys.includes(keyOf(e.id) === '-' ? '' : e.id) ? undefined : null;
      } else if (base === 'null') {
        before = null;
      }
    }
    if (before !== undefined && !sameState(before, e.prev)) {
      err(n, `${e.op} of ${e.id || '(empty id)'} says its previous state was ${fmtState(e.prev)}, but it was ${fmtState(before)}`);
    }
    known.set(e.id, e.state);
  }
  res.headerOnly = res.entries.length === 0 && res.damagedLines === 0;
  if (partial.length > 0 && isTornPrefix(partial)) {
    note(lines.length + 1, `torn last write (${partial.length} bytes): never acknowledged, ignored; the next writer cuts it`);
  } else if (partial.length > 0) {
    err(lines.length + 1, `damaged last line without a newline (${partial.length} bytes): it may have been an acknowledged change`);
  }
  return res;
}

/** Read and check every line of the store in `dir`. Takes no lock. */
export function analyzeStore(dir: string): Analysis {
  const findings: Finding[] = [];
  const snapFile = path.join(dir, SNAPSHOT_NAME);
  const journalFile = path.join(dir, JOURNAL_NAME);
  // Snapshot first, then journal, as Store.read() does: a compaction in
  // between shows as a journal newer than the snapshot; read again then.
  let st = readText(snapFile);
  let jt = readText(journalFile);
  for (let attempt = 0; attempt < 5 && st && jt; attempt++) {
    const sg = decodeSnapshotHeader(st.text.slice(0, st.text.indexOf('\n')))?.gen;
    const jg = decodeJournalHeader(jt.text.slice(0, jt.text.indexOf('\n')))?.gen;
    if (sg === undefined || jg === undefined || jg <= sg) break;
    st = readText(snapFile);
    jt = readText(journalFile);
  }
  const snapshot = st ? analyzeSnapshot(SNAPSHOT_NAME, st, findings) : null;
  const journal = jt ? analyzeJournal(JOURNAL_NAME, jt, snapshot, findings) : null;
  if (!st && jt) findings.push({ severity: 'error', file: SNAPSHOT_NAME, what: 'missing, while the journal exists: no record but those the journal sets is proven' });
  if (st && !jt) {
    const n = snapshot!.records.size + snapshot!.damagedKeys.length;
    findings.push(
      n > 0
        ? { severity: 'error', file: JOURNAL_NAME, what: `missing: whether the ${n} snapshot record(s) were removed since cannot be known` }
        : { severity: 'note', file: JOURNAL_NAME, what: 'missing beside an empty snapshot (a store creation was cut short); the next writer creates it' },
    );
  }
  return { dir, findings, snapshot, journal, empty: !st && !jt };
}

export const errorsOf = (a: Analysis): Finding[] => a.findings.filter((f) => f.severity === 'error');

export function formatFinding(f: Finding): string {
  return `${f.file}${f.line !== undefined ? `:${f.line}` : ''}: ${f.severity === 'note' ? 'note: ' : ''}${f.what}`;
}

/** The naive view: every valid snapshot line overlaid with every valid journal entry (what the files say, proven or not). */
export function naiveRecords(a: Analysis): Map<string, RecState> {
  const m = new Map<string, RecState>();
  if (a.snapshot) for (const [id, r] of a.snapshot.records) m.set(id, r.state);
  for (const { entry } of a.journal?.entries ?? []) {
    if (entry.op === 'set') m.set(entry.id, entry.state!);
    else if (entry.op === 'del') m.delete(entry.id);
  }
  return m;
}

/**
 * The records the store proves, from a view taken under the lock, following
 * the fail-safe rules of lib/store/journal.ts:
 *  - healthy view: every valid snapshot line (sorted or not; an id on two
 *    lines with different states is proven by neither), with the journal's
 *    entries applied in order; damaged snapshot lines are lost;
 *  - damaged view: only what journal entries after the last damage or `lost`
 *    barrier set (StoreView.get's rule); the snapshot proves nothing.
 * Only live memberships are kept, as Store.records keeps them.
 * `snapshotUnproven`: the journal vanished beside a non-empty snapshot and a
 * writer re-created it empty, which makes the view look healthy; whatever the
 * snapshot holds is still unproven.
 */
export function provenRecords(view: StoreView, a: Analysis, snapshotUnproven: boolean): ClientRecord[] {
  const out = new Map<string, RecState>();
  if (view.healthy && !view.facts.stale) {
    if (a.snapshot && !snapshotUnproven) for (const [id, r] of a.snapshot.records) out.set(id, r.state);
    for (const e of view.facts.current) {
      if (e.op === 'set') out.set(e.id, e.state!);
      else if (e.op === 'del') out.delete(e.id);
    }
  } else if (view.healthy) {
    if (a.snapshot && !snapshotUnproven) for (const [id, r] of a.snapshot.records) out.set(id, r.state);
  } else {
    for (const [id, o] of view.facts.overlay) {
      if (o.index >= view.facts.proofFrom && o.state) out.set(id, o.state);
    }
  }
  const live: ClientRecord[] = [];
  for (const [id, s] of out) {
    const l = liveState(s, view.epochs);
    if (l) live.push({ id, ...l });
  }
  return sortRecords(live);
}

export interface RepairResult {
  salvaged: number;
  lost: string[];
  /** Ids whose record could not even be read (damaged lines): key text as far as readable. */
  lostDamaged: string[];
  keptAside: string[];
}

/**
 * Repair under the store's lock (Store.replaceAll): salvage every proven
 * record into a fresh snapshot generation, after hard-linking the damaged
 * files to timestamped names (the store then renames its new files over the
 * old names, so the old contents survive only under the new names: moved
 * aside, never deleted).
 */
export async function repairStore(store: Store, before: Analysis): Promise<RepairResult> {
  const journalVanished = before.journal === null && (before.snapshot?.records.size ?? 0) + (before.snapshot?.damagedKeys.length ?? 0) > 0;
  let result: RepairResult | null = null;
  const linked: string[] = [];
  await store.replaceAll((view) => {
    const a = analyzeStore(store.dir);
    const snapshotUnproven =
      journalVanished && a.snapshot !== null && a.snapshot.ino === before.snapshot?.ino && (a.journal?.headerOnly ?? true);
    const salvage = provenRecords(view, a, snapshotUnproven);
    const kept = new Set(salvage.map((r) => r.id));
    const naive = naiveRecords(a);
    // A record whose every membership is dead (in no live epoch) is not lost: it is gone.
    const lost = [...naive].filter(([id, st]) => !kept.has(id) && liveState(st, view.epochs)).map(([id]) => id);
    // A damaged snapshot line's client is lost unless a journal entry decided its state since.
    const touched = new Set((a.journal?.entries ?? []).filter((e) => e.entry.op === 'set' || e.entry.op === 'del').map((e) => e.entry.id));
    const lostDamaged = [
      ...new Set([
        ...(a.snapshot?.damagedKeys ?? []).filter((k) => !kept.has(k) && !naive.has(k) && !touched.has(k)),
        ...(a.journal?.damagedIds ?? []).filter((k) => !kept.has(k) && !naive.has(k)),
      ]),
    ];
    const errFiles = new Set(errorsOf(a).map((f) => f.file));
    const stamp = fileStamp();
    for (const name of [SNAPSHOT_NAME, JOURNAL_NAME]) {
      const fromSnapshotLost = name === SNAPSHOT_NAME && a.snapshot !== null && lost.some((id) => a.snapshot!.records.has(id));
      const journalMatters = name === JOURNAL_NAME && !view.healthy && !(a.journal?.headerOnly ?? true);
      if (!errFiles.has(name) && !fromSnapshotLost && !journalMatters) continue;
      // A journal the store has just re-created (it was missing) holds nothing to keep.
      if (name === JOURNAL_NAME && before.journal === null) continue;
      const src = path.join(store.dir, name);
      if (!fs.existsSync(src)) continue;
      let dst = `${src}.damaged-${stamp}`;
      for (let k = 1; fs.existsSync(dst); k++) dst = `${src}.damaged-${stamp}.${k}`;
      fs.linkSync(src, dst);
      linked.push(dst);
    }
    result = { salvaged: salvage.length, lost: sortRecords(lost.map((id) => ({ id }))).map((r) => r.id), lostDamaged, keptAside: linked.map((p) => path.basename(p)) };
    return salvage;
  });
  return result!;
}
