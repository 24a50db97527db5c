// Reading the journal and deciding what it proves. Pure: bytes in, facts out.
import {
  decodeJournalEntryAt,
  decodeJournalHeader,
  type Epochs,
  type JournalEntry,
  type JournalHeader,
  type RecState,
} from './format';

export interface ParsedJournal {
  header: JournalHeader | null;
  /** Valid entries, in file order. */
  entries: JournalEntry[];
  /** Positions in `entries` before which a complete line was damaged, or the seq or gen broke. */
  damage: number[];
  /** Byte offset just past the last complete line: a torn tail starts here. */
  completeEnd: number;
  /** Bytes of an unfinished last line (an append cut short): ignored, then truncated by a writer. */
  tornBytes: number;
  /** The bytes after the last newline are not an append cut short but a damaged line: kept, as damage. */
  damagedTail: boolean;
  /** The gen its lines belong to (header, else first entry), null when unknown. */
  gen: number | null;
  lastSeq: number;
}

/**
 * Parse a journal file's bytes (offsets in ParsedJournal are byte offsets).
 * `resume`, a parse of bytes whose first resume.completeEnd bytes are these
 * bytes' too, is carried on from there rather than redone: a long-lived
 * writer (the daemon) reads only what was appended since. Its arrays are
 * copied, never changed.
 */
export function parseJournal(bytes: Buffer, resume: ParsedJournal | null = null): ParsedJournal {
  const entries: JournalEntry[] = resume ? resume.entries.slice() : [];
  // (Its damaged tail, if any, is read again: it is past completeEnd.)
  const damage: number[] = resume ? resume.damage.slice(0, resume.damage.length - Number(resume.damagedTail)) : [];
  let header: JournalHeader | null = resume?.header ?? null;
  let gen: number | null = resume?.gen ?? null;
  let lastSeq = resume?.lastSeq ?? 0;
  let pos = resume?.completeEnd ?? 0;
  for (;;) {
    const nl = bytes.indexOf(10, pos);
    if (nl < 0) break;
    const start = pos;
    pos = nl + 1;
    if (start === 0) {
      // A damaged header costs nothing by itself: every entry carries its
      // gen, and the seq check below notices a lost first entry.
      header = decodeJournalHeader(bytes.toString('latin1', 0, nl));
      if (header) gen = header.gen;
      if (header || bytes[0] === 35 /* # */) continue;
    }
    const e = decodeJournalEntryAt(bytes, start, nl);
    if (!e) {
      damage.push(entries.length);
      continue;
    }
    gen ??= e.gen;
    if (e.gen !== gen || e.seq !== lastSeq + 1) damage.push(entries.length);
    lastSeq = e.seq;
    entries.push(e);
  }
  const tail = bytes.toString('latin1', pos);
  // An append cut short (a crash, a power cut) leaves a prefix of a valid
  // line, perhaps followed by zeros. Anything else after the last newline is
  // a damaged line that lost its newline: it may have been an acknowledged
  // deletion, so it counts as damage, and a writer must keep it as such.
  const damagedTail = tail.length > 0 && !isTornPrefix(tail);
  if (damagedTail) damage.push(entries.length);
  return { header, entries, damage, completeEnd: pos, tornBytes: tail.length, damagedTail, gen, lastSeq };
}

// Field by field, the shapes of a journal line (without its CRC): a complete
// field and a prefix of one, for each layout a writer may have been cut short in.
const TIME = ['-|[0-9]+', '-|[0-9]*'];
const SESS = ['[01-]', '[01-]?'];
const PH = ['-|[0-9a-f]{64}', '-|[0-9a-f]{0,64}'];
const V1_STATE = [TIME, SESS];
const V2_STATE = [TIME, SESS, TIME, PH, TIME, PH];
const HEAD = [['[0-9]+', '[0-9]*'], ['[0-9]+', '[0-9]*']];
const ID = ['-|(?:[0-9a-f]{2})+', '-|[0-9a-f]*'];
const OPS = ['set|del|lost', '(?:s|se|set|d|de|del|l|lo|los|lost)?'];
const LAYOUTS: RegExp[][][] = [
  [...HEAD, OPS, ID, ...V1_STATE, ...V1_STATE],
  [...HEAD, OPS, ID, ...V2_STATE, ...V2_STATE],
  [...HEAD, ['grace', '(?:g|gr|gra|grac|grace)?'], ['-', '-?'], ['[0-9]+', '[0-9]*'], ['[0-9]+', '[0-9]*']],
].map((fields) => [...fields, ['[0-9a-f]{8}', '[0-9a-f]{0,8}']].map(([full, prefix]) => [new RegExp(`^(?:${full})$`), new RegExp(`^(?:${prefix})$`)]));

/** Could `tail` be the start of an entry line whose write was cut short? */
export function isTornPrefix(tail: string): boolean {
  const t = tail.replace(/\0+$/, '');
  if (t.includes('\0')) return false;
  const f = t.split(' ');
  return LAYOUTS.some((layout) => {
    if (f.length > layout.length) return false;
    for (let i = 0; i < f.length - 1; i++) if (!layout[i][0].test(f[i])) return false;
    return layout[f.length - 1][1].test(f[f.length - 1]);
  });
}

export interface JournalFacts {
  /** True when every record's state is proven; false makes lookups conservative. */
  healthy: boolean;
  /** What is wrong, for the log and `verify`. */
  problems: string[];
  /** Entries at or after this index prove the state they set; before it they prove nothing. */
  proofFrom: number;
  /** Final state per id from the entries that apply, with the index of the deciding entry. */
  overlay: Map<string, { state: RecState | null; index: number }>;
  /** Entries that apply to the snapshot (none when the journal is stale). */
  current: JournalEntry[];
  /** The journal predates the snapshot (a compaction was cut short): ignore it, and reset it. */
  stale: boolean;
  /** A writer should append a `lost` barrier so that what it writes next is proven. */
  needsBarrier: boolean;
  /** The epochs set by the journal's last `grace` entry, with its index; null when it has none. */
  epochs: { epochs: Epochs; index: number } | null;
}

/**
 * Decide what the journal proves on top of a snapshot whose gen is `snapGen`
 * (null: snapshot missing or its header unreadable). `journal` null: missing.
 * Fail safe: wherever a lost line might have deleted a client, its record is
 * unproven until a later entry sets it again.
 */
export function resolveJournal(
  journal: ParsedJournal | null,
  snapGen: number | null,
  snapshotMissing: boolean,
  /** The snapshot is a new store's first, empty one: a missing journal lost nothing. */
  snapshotFresh = false,
): JournalFacts {
  const problems: string[] = [];
  const notes: string[] = [];
  if (journal === null) {
    if (snapshotMissing || snapshotFresh) {
      return { healthy: true, problems, proofFrom: 0, overlay: new Map(), current: [], stale: false, needsBarrier: false, epochs: null };
    }
    problems.push('journal file is missing');
    return { healthy: false, problems, proofFrom: Infinity, overlay: new Map(), current: [], stale: false, needsBarrier: true, epochs: null };
  }
  let unknownBase = false;
  if (snapshotMissing) {
    problems.push('snapshot file is missing');
    unknownBase = true;
  } else if (snapGen === null) {
    problems.push('snapshot header is damaged');
    unknownBase = true;
  }
  if (!journal.header) {
    // Every entry carries its gen, and the seq check notices a lost first
    // entry, so a damaged header alone costs nothing; but a journal with
    // neither a header nor entries (empty, or cut inside its header) may have
    // lost any number of deletions.
    if (journal.entries.length === 0 && journal.damage.length === 0) {
      problems.push('journal is empty or cut short inside its header');
      if (!unknownBase) unknownBase = true;
    } else notes.push('journal header is damaged');
  }
  const jgen = journal.gen;
  if (snapGen !== null && jgen !== null && jgen < snapGen) {
    return { healthy: !unknownBase, problems: [...problems, ...notes], proofFrom: unknownBase ? Infinity : 0, overlay: new Map(), current: [], stale: true, needsBarrier: unknownBase, epochs: null };
  }
  if (snapGen !== null && jgen !== null && jgen > snapGen) {
    problems.push(`journal gen ${jgen} is newer than snapshot gen ${snapGen}`);
    unknownBase = true;
  }
  const current = journal.entries;
  // Entries from proofFrom on prove the state they set. Every cause of doubt
  // pushes it later, never earlier: an unknown base (snapshot missing or its
  // header damaged) makes everything before the last barrier unproven, a
  // damaged or missing line everything before it.
  let lastLost = -1;
  for (let i = current.length - 1; i >= 0; i--) {
    if (current[i].op === 'lost') {
      lastLost = i;
      break;
    }
  }
  let proofFrom = 0;
  if (unknownBase) proofFrom = lastLost >= 0 ? lastLost + 1 : Infinity;
  if (lastLost >= 0) {
    // A barrier is itself a record of damage: what it follows stays unproven
    // (until an administrator repairs the store), not only while the damaged
    // lines are still around.
    problems.push('journal records that earlier changes were lost');
    proofFrom = Math.max(proofFrom, lastLost + 1);
  }
  if (journal.damage.length > 0) {
    problems.push(`journal has ${journal.damage.length} damaged or missing line(s)`);
    proofFrom = Math.max(proofFrom, journal.damage[journal.damage.length - 1]);
  }
  const overlay = new Map<string, { state: RecState | null; index: number }>();
  let epochs: JournalFacts['epochs'] = null;
  current.forEach((e, index) => {
    if (e.op === 'grace') epochs = { epochs: e.epochs!, index };
    else if (e.op !== 'lost') overlay.set(e.id, { state: e.state, index });
  });
  const healthy = problems.length === 0;
  const needsBarrier = !healthy && proofFrom === Infinity;
  return { healthy, problems: [...problems, ...notes], proofFrom: healthy ? 0 : proofFrom, overlay, current, stale: false, needsBarrier, epochs };
}

/** Does a record still have to reclaim after a boot at graceStart (SPEC §4)? */
export function stillReclaiming(s: RecState | null, graceStart: number): boolean {
  return s !== null && (!s.session || s.time < graceStart);
}

/** Change the journal's entries make to the count of clients still to reclaim. */
export function reclaimingDelta(entries: readonly JournalEntry[], graceStart: number): number {
  let d = 0;
  for (const e of entries) {
    if (e.op === 'set' || e.op === 'del') d += Number(stillReclaiming(e.state, graceStart)) - Number(stillReclaiming(e.prev, graceStart));
  }
  return d;
}
