// Reading the journal and deciding what it proves. Pure: text in, facts out.
import {
  decodeJournalEntry,
  decodeJournalHeader,
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
  /** The gen its lines belong to (header, else first entry), null when unknown. */
  gen: number | null;
  lastSeq: number;
}

/** Parse journal text decoded as latin1, so that string offsets are byte offsets. */
export function parseJournal(text: string): ParsedJournal {
  const entries: JournalEntry[] = [];
  const damage: number[] = [];
  let header: JournalHeader | null = null;
  let gen: number | null = null;
  let lastSeq = 0;
  let pos = 0;
  let first = true;
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (first) {
      first = false;
      // A damaged header costs nothing by itself: every entry carries its
      // gen, and the seq check below notices a lost first entry.
      header = decodeJournalHeader(line);
      if (header) gen = header.gen;
      if (header || line.startsWith('#')) continue;
    }
    const e = decodeJournalEntry(line);
    if (!e) {
      damage.push(entries.length);
      continue;
    }
    gen ??= e.gen;
    if (e.gen !== gen || e.seq !== lastSeq + 1) damage.push(entries.length);
    lastSeq = e.seq;
    entries.push(e);
  }
  return { header, entries, damage, completeEnd: pos, tornBytes: text.length - pos, gen, lastSeq };
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
}

/**
 * Decide what the journal proves on top of a snapshot whose gen is `snapGen`
 * (null: snapshot missing or its header unreadable). `journal` null: missing.
 * Fail safe: wherever a lost line might have deleted a client, its record is
 * unproven until a later entry sets it again.
 */
export function resolveJournal(journal: ParsedJournal | null, snapGen: number | null, snapshotMissing: boolean): JournalFacts {
  const problems: string[] = [];
  const notes: string[] = [];
  if (journal === null) {
    if (snapshotMissing) {
      return { healthy: true, problems, proofFrom: 0, overlay: new Map(), current: [], stale: false, needsBarrier: false };
    }
    problems.push('journal file is missing');
    return { healthy: false, problems, proofFrom: Infinity, overlay: new Map(), current: [], stale: false, needsBarrier: true };
  }
  let unknownBase = false;
  if (snapshotMissing) {
    problems.push('snapshot file is missing');
    unknownBase = true;
  } else if (snapGen === null) {
    problems.push('snapshot header is damaged');
    unknownBase = true;
  }
  if (!journal.header) notes.push('journal header is damaged');
  const jgen = journal.gen;
  if (snapGen !== null && jgen !== null && jgen < snapGen) {
    return { healthy: !unknownBase, problems: [...problems, ...notes], proofFrom: unknownBase ? Infinity : 0, overlay: new Map(), current: [], stale: true, needsBarrier: unknownBase };
  }
  if (snapGen !== null && jgen !== null && jgen > snapGen) {
    problems.push(`journal gen ${jgen} is newer than snapshot gen ${snapGen}`);
    unknownBase = true;
  }
  const current = journal.entries;
  let proofFrom = unknownBase ? Infinity : 0;
  if (journal.damage.length > 0) {
    const last = journal.damage[journal.damage.length - 1];
    problems.push(`journal has ${journal.damage.length} damaged or missing line(s)`);
    proofFrom = Math.max(proofFrom === Infinity ? 0 : proofFrom, last);
    if (unknownBase) proofFrom = Infinity;
  }
  for (let i = current.length - 1; i >= 0; i--) {
    if (current[i].op === 'lost') {
      proofFrom = Math.min(proofFrom, i + 1);
      break;
    }
  }
  const overlay = new Map<string, { state: RecState | null; index: number }>();
  current.forEach((e, index) => {
    if (e.op !== 'lost') overlay.set(e.id, { state: e.state, index });
  });
  const healthy = problems.length === 0;
  const needsBarrier = !healthy && proofFrom === Infinity;
  return { healthy, problems: [...problems, ...notes], proofFrom: healthy ? 0 : proofFrom, overlay, current, stale: false, needsBarrier };
}

/** Does a record still have to reclaim after a boot at graceStart (SPEC §4)? */
export function stillReclaiming(s: RecState | null, graceStart: number): boolean {
  return s !== null && (!s.session || s.time < graceStart);
}

/** Change the journal's entries make to the count of clients still to reclaim. */
export function reclaimingDelta(entries: readonly JournalEntry[], graceStart: number): number {
  let d = 0;
  for (const e of entries) {
    if (e.op !== 'lost') d += Number(stillReclaiming(e.state, graceStart)) - Number(stillReclaiming(e.prev, graceStart));
  }
  return d;
}
