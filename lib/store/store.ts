// The client store: a sorted snapshot plus an append-only journal in one
// directory. Reads take no lock and see a consistent pair of files; writes
// take the lock, append one fsync'ed journal write, and fold the journal into
// a new snapshot once it passes a size threshold (and at gracedone).
import * as fs from 'fs';
import * as path from 'path';
import { crashArmed, crashPoint } from '../crashpoint';
import { EREMOTEIO, ENOTDIR, ErrnoError, errnoOf } from '../errno';
import {
  decodeRecordAt,
  encodeJournalEntry,
  encodeJournalHeader,
  encodeSnapshotHeader,
  INITIAL_EPOCHS,
  keyOf,
  newRecordFields,
  sameState,
  type ClientRecord,
  type Epochs,
  type JournalEntry,
  type RecState,
} from './format';
import { fsyncDir, lexists, openAppend, openRead, openWrite, readBytes, replaceSmallFile } from './fsutil';
import { parseJournal, reclaimingDelta, resolveJournal, type JournalFacts, type ParsedJournal } from './journal';
import { createStoreId, pinVerdict, readStoreId, StoreRefused, type Position } from './identity';
import { acquireLock, DEFAULT_LOCK, LockLost, type HeldLock, type LockOptions } from './lock';
import { compactThreshold } from './policy';
import { SnapshotReader, writeSnapshotFile } from './snapshot';
import { graceEnded, liveState, recoveryMembership } from '../tracking';

export const SNAPSHOT_NAME = 'clients.snap';
export const JOURNAL_NAME = 'clients.journal';
export const SNAPSHOT_TMP_NAME = 'clients.snap.tmp';
/** Journal size past which a writer folds it into a new snapshot, at least (policy.ts). */
export const DEFAULT_COMPACT_BYTES = 32 * 1024;
/**
 * A deferred compaction (deferCompaction) is run by the write itself once the
 * journal is this many times past the threshold: a writer that is never idle
 * still folds it.
 */
const DEFER_LIMIT = 16;

export interface StoreLog {
  warn(msg: string): void;
  error(msg: string): void;
  debug(msg: string | (() => string)): void;
}

export interface StoreOptions {
  dir: string;
  log?: StoreLog;
  /** Seconds since the epoch; the clock records are stamped with. */
  now?: () => number;
  compactBytes?: number;
  lock?: Partial<Omit<LockOptions, 'onCompromised'>>;
  /**
   * Leave the compactions that writes make due to compactIfDue(), rather than
   * run them before the write returns: the daemon answers first, and folds
   * the journal when it is idle (a write runs it after all once the journal
   * is DEFER_LIMIT times past the threshold).
   */
  deferCompaction?: boolean;
  /** The store id this store must have (nfs.conf store-id): any other, or none, is refused (StoreRefused). */
  storeId?: string;
  /** Another reason to refuse the store, asked before every read and write; null to serve it. */
  guard?: () => string | null;
}

/** Nothing was renamed: the store is as it was. */
class SnapshotNotWritten extends ErrnoError {
  constructor(message: string) {
    super(EREMOTEIO, message);
  }
}

/** Stores whose damage this process has already reported: it is logged once, until the store is sound again. */
const damageLogged = new Set<string>();
const quiet: StoreLog = { warn() {}, error() {}, debug() {} };

/**
 * Make sure the storage directory exists, as nfsdcltrack does: one mkdir
 * (mode 0700, no parents). Failures carry the errno the C program returns.
 */
export function ensureStorageDir(dir: string): void {
  try {
    if (!fs.statSync(dir).isDirectory()) throw new ErrnoError(ENOTDIR, `${dir} is not a directory`);
    return;
  } catch (e) {
    if (e instanceof ErrnoError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ErrnoError(errnoOf(e, EREMOTEIO), `cannot use ${dir}: ${(e as Error).message}`);
  }
  try {
    fs.mkdirSync(dir, 0o700);
    fs.chmodSync(dir, 0o700);
    fsyncDir(path.dirname(path.resolve(dir)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return ensureStorageDir(dir);
    throw new ErrnoError(errnoOf(e, EREMOTEIO), `cannot create ${dir}: ${(e as Error).message}`);
  }
}

interface JournalFile {
  parsed: ParsedJournal;
  size: number;
}

/** The journal as last read: its complete lines' bytes and their parse. */
interface JournalSeen {
  prefix: Buffer;
  parsed: ParsedJournal;
}

/**
 * Read and parse the journal. Whatever another process did to it, the file
 * is read whole every time; only the parse of a prefix byte-for-byte the same
 * as the last read's is reused (parsing is a function of the bytes alone), so
 * no write, replacement or damage can be hidden by it.
 */
function readJournal(file: string, seen: JournalSeen | null): { journal: JournalFile; seen: JournalSeen } | null {
  const fd = openRead(file);
  if (fd === null) return null;
  try {
    const bytes = readBytes(fd, 0, fs.fstatSync(fd).size);
    const end = seen?.parsed.completeEnd ?? 0;
    const same = seen !== null && bytes.length >= end && bytes.subarray(0, end).equals(seen.prefix);
    const parsed = parseJournal(bytes, same ? seen.parsed : null);
    return { journal: { parsed, size: bytes.length }, seen: { prefix: bytes.subarray(0, parsed.completeEnd), parsed } };
  } finally {
    fs.closeSync(fd);
  }
}

/** A consistent, read-only view of the store's records. */
export class StoreView {
  constructor(
    readonly snapshot: SnapshotReader | null,
    readonly journal: JournalFile | null,
    readonly facts: JournalFacts,
  ) {}

  get healthy(): boolean {
    return this.facts.healthy;
  }

  get problems(): string[] {
    return this.facts.problems;
  }

  get gen(): number {
    return this.snapshot?.header?.gen ?? this.journal?.parsed.gen ?? 0;
  }

  /** How far the store has got: its generation, and the journal's last entry on top of it (0: none). */
  get position(): Position {
    const j = this.journal?.parsed;
    return { gen: this.gen, seq: j && j.gen === this.gen ? j.lastSeq : 0 };
  }

  /**
   * The cld epochs: the journal's last word on them, else the snapshot's. On a
   * damaged store this is the best known; only proven records are read by it.
   */
  get epochs(): Epochs {
    return this.facts.epochs?.epochs ?? this.snapshot?.header?.epochs ?? INITIAL_EPOCHS;
  }

  /** The record a client may reclaim with, its dead memberships dropped; null when absent, dead or unproven. */
  get(id: string): RecState | null {
    return liveState(this.stored(id), this.epochs);
  }

  /** The record as stored (proven), whatever the epochs. */
  protected stored(id: string): RecState | null {
    const o = this.facts.overlay.get(id);
    if (o && o.index >= this.facts.proofFrom) return o.state;
    if (!this.facts.healthy) return null;
    if (o) return o.state;
    return this.snapshot ? this.snapshot.lookup(id) : null;
  }

  /** How many clients must still reclaim after a boot at graceStart; null if unknown. */
  countReclaiming(graceStart: number): number | null {
    if (!this.facts.healthy) return null;
    const base = this.snapshot ? this.snapshot.countReclaiming(graceStart) : 0;
    return base === null ? null : base + reclaimingDelta(this.facts.current, graceStart);
  }

  close(): void {
    this.snapshot?.close();
  }
}

/** A view that also collects changes; the store appends them on commit. */
export class Txn extends StoreView {
  readonly pending: JournalEntry[] = [];
  private readonly pendingState = new Map<string, RecState | null>();
  private pendingEpochs: Epochs | null = null;

  constructor(view: StoreView, private readonly journalGen: number, private readonly nextSeq: number) {
    super(view.snapshot, view.journal, view.facts);
  }

  override get epochs(): Epochs {
    return this.pendingEpochs ?? super.epochs;
  }

  protected override stored(id: string): RecState | null {
    return this.pendingState.has(id) ? this.pendingState.get(id)! : super.stored(id);
  }

  /** Move to new epochs (a grace start or end): one journal entry, no record rewritten. */
  setEpochs(epochs: Epochs): void {
    const was = this.epochs;
    if (was.current === epochs.current && was.recovery === epochs.recovery) return;
    if (this.facts.needsBarrier && this.pending.length === 0) this.push('lost', '', null, null);
    this.pending.push({ gen: this.journalGen, seq: this.nextSeq + this.pending.length, op: 'grace', id: '', state: null, prev: null, epochs });
    this.pendingEpochs = epochs;
  }

  override countReclaiming(graceStart: number): number | null {
    const base = super.countReclaiming(graceStart);
    return base === null ? null : base + reclaimingDelta(this.pending, graceStart);
  }

  /** Set (or with null, delete) a record; returns whether anything changed. */
  put(id: string, state: RecState | null): boolean {
    if (sameState(this.get(id), state)) return false;
    if (this.facts.needsBarrier && this.pending.length === 0) this.push('lost', '', null, null);
    // The previous state as stored, dead memberships included: what the
    // chain of prev states (verify) and the time index count.
    this.push(state ? 'set' : 'del', id, state, this.stored(id));
    this.pendingState.set(id, state);
    return true;
  }

  private push(op: JournalEntry['op'], id: string, state: RecState | null, prev: RecState | null): void {
    this.pending.push({ gen: this.journalGen, seq: this.nextSeq + this.pending.length, op, id, state, prev });
  }
}

/** Longer than any record's sort key (1,024 bytes as hex). */
const PREV_KEY_BYTES = 2048;

/**
 * The order check of a pass over the snapshot: each key must sort after the
 * one before. Sorted keys share long prefixes, so the shared prefix is
 * compared and only the rest copied (copying whole keys was the pass's
 * largest cost after the line checks).
 */
class KeyOrder {
  private readonly prev = Buffer.allocUnsafe(PREV_KEY_BYTES);
  private len = -1;

  /** Is b[from, to) after the last key (bytewise, as < orders latin1 strings)? It becomes the last key. */
  advance(b: Uint8Array, from: number, to: number): boolean {
    const p = this.prev;
    const n = to - from;
    const m = Math.min(n, this.len);
    let k = 0;
    while (k < m && b[from + k] === p[k]) k++;
    if (this.len >= 0 && (k < m ? b[from + k] < p[k] : n <= this.len)) return false;
    for (; k < n; k++) p[k] = b[from + k];
    this.len = n;
    return true;
  }
}

/** a[aFrom, aTo) against b[bFrom, bTo), bytewise (as < orders latin1 strings): in a loop, keys differ early and Buffer.compare is a call into C++. */
function compareBytes(a: Uint8Array, aFrom: number, aTo: number, b: Uint8Array, bFrom: number, bTo: number): number {
  const n = Math.min(aTo - aFrom, bTo - bFrom);
  for (let k = 0; k < n; k++) {
    const d = a[aFrom + k] - b[bFrom + k];
    if (d !== 0) return d;
  }
  return aTo - aFrom - (bTo - bFrom);
}

/** The journal's proven final states, sorted by key, to merge into the snapshot's order. */
function provenOverlay(view: StoreView): { key: string; id: string; state: RecState | null }[] {
  return [...view.facts.overlay.entries()]
    .filter(([, o]) => o.index >= view.facts.proofFrom)
    .map(([id, o]) => ({ key: keyOf(id), id, state: o.state }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Records passed through, keeping the lock's heartbeat going while a long compaction blocks the event loop. */
function* withHeartbeat(records: Iterable<ClientRecord>, held: HeldLock): Generator<ClientRecord> {
  let n = 0;
  for (const r of records) {
    if ((++n & 4095) === 0) held.beat();
    yield r;
  }
}

export class Store {
  readonly dir: string;
  readonly snapshotPath: string;
  readonly journalPath: string;
  private readonly log: StoreLog;
  private readonly now: () => number;
  private readonly compactBytes: number;
  private readonly lockOpts: Omit<LockOptions, 'onCompromised'>;
  private compromised = false;
  private readonly deferCompaction: boolean;
  private compactionDue = false;
  private held: HeldLock | null = null;
  private readonly pin: string | undefined;
  private readonly guard: (() => string | null) | undefined;
  /** Where this process's last write left the store (a journal append, or a new generation at seq 0). */
  lastWritten: Position | null = null;
  /** The last journal read, for the next read to carry on from. */
  private journalSeen: JournalSeen | null = null;

  constructor(opts: StoreOptions) {
    this.dir = opts.dir;
    this.snapshotPath = path.join(opts.dir, SNAPSHOT_NAME);
    this.journalPath = path.join(opts.dir, JOURNAL_NAME);
    this.log = opts.log ?? quiet;
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.compactBytes = opts.compactBytes ?? DEFAULT_COMPACT_BYTES;
    this.lockOpts = { ...DEFAULT_LOCK, ...opts.lock };
    this.deferCompaction = opts.deferCompaction === true;
    this.pin = opts.storeId;
    this.guard = opts.guard;
  }

  /** Refuse a store we must not serve (StoreRefused): the pin and the guard, when set. */
  vet(): void {
    const why = this.guard?.() ?? (this.pin === undefined ? null : pinVerdict(this.dir, this.pin));
    if (why !== null) throw new StoreRefused(this.dir, why);
  }

  /** The store's id, made now (under the lock) if it has none yet; null when clients.id is damaged. */
  async ensureId(): Promise<string | null> {
    this.vet();
    // The lock only to make one: a store that has its id is not written (nor locked) at every start.
    const have = readStoreId(this.dir);
    if (have.id !== null || have.damaged) return have.id;
    return this.locked(async () => createStoreId(this.dir, this.now()));
  }

  /** Current time for new records, in seconds. */
  time(): number {
    return this.now();
  }

  /**
   * A consistent view without taking the lock. A compaction replaces the
   * snapshot before the journal, so a journal newer than the snapshot we
   * opened means one ran in between: read again.
   */
  read(): StoreView {
    if (!this.held) this.vet();
    for (let attempt = 0; ; attempt++) {
      const snapshot = SnapshotReader.open(this.snapshotPath);
      const read = readJournal(this.journalPath, this.journalSeen);
      this.journalSeen = read?.seen ?? null;
      const journal = read?.journal ?? null;
      const snapGen = snapshot?.header?.gen ?? null;
      const jgen = journal?.parsed.gen ?? null;
      if (attempt < 5 && snapGen !== null && jgen !== null && jgen > snapGen) {
        snapshot?.close();
        continue;
      }
      const h = snapshot?.header;
      const fresh = !!h && h.gen === 1 && h.records === 0;
      const facts = resolveJournal(journal?.parsed ?? null, snapGen, snapshot === null, fresh);
      const view = new StoreView(snapshot, journal, facts);
      // A daemon reads the same store for months: once healthy again (repaired), new damage is news.
      if (facts.healthy) damageLogged.delete(this.dir);
      else if (!damageLogged.has(this.dir)) {
        damageLogged.add(this.dir);
        this.log.error(`store ${this.dir} is damaged (${facts.problems.join('; ')}): clients it cannot prove are refused; run 'nfsdcltrack verify --repair'`);
      }
      return view;
    }
  }

  /** Create the store's files if there are none (init). */
  async init(): Promise<boolean> {
    if (lexists(this.snapshotPath) || lexists(this.journalPath)) return false;
    return this.locked(async () => this.createFiles());
  }

  /**
   * Run fn under the lock on a fresh view, then make its changes durable:
   * one append, one fdatasync, before this resolves.
   */
  async mutate<T>(fn: (tx: Txn) => T | Promise<T>): Promise<T> {
    return this.locked(async () => {
      await this.createFiles();
      let view = await this.prepareForWrite();
      try {
        const jgen = view.journal?.parsed.gen ?? view.snapshot?.header?.gen ?? 0;
        const tx = new Txn(view, jgen, (view.journal?.parsed.lastSeq ?? 0) + 1);
        const result = await fn(tx);
        if (tx.pending.length === 0) return result;
        const size = await this.append(tx.pending);
        if (view.healthy && this.compactionWanted(view, size)) {
          if (this.deferCompaction && !this.compactionWanted(view, size / DEFER_LIMIT)) {
            this.compactionDue = true;
            return result;
          }
          // Health is checked again (compactLocked) on the view compacted, read after the append.
          view.close();
          view = this.read();
          await this.compactLocked(view).catch((e) => this.log.warn(`compaction failed, will retry later: ${(e as Error).message}`));
        }
        return result;
      } finally {
        view.close();
      }
    });
  }

  private compactionWanted(view: StoreView, journalBytes: number): boolean {
    return journalBytes > compactThreshold(this.compactBytes, view.snapshot?.size ?? 0, view.snapshot?.header?.records ?? 0);
  }

  /** A deferred write made a compaction due (compactIfDue runs it). */
  get compactionPending(): boolean {
    return this.compactionDue;
  }

  /** Run the compaction a deferred write made due, if it still is. */
  async compactIfDue(): Promise<void> {
    if (!this.compactionDue) return;
    this.compactionDue = false;
    await this.locked(async () => {
      const view = await this.prepareForWrite();
      try {
        if (view.healthy && this.compactionWanted(view, view.journal?.size ?? 0)) await this.compactLocked(view);
      } finally {
        view.close();
      }
    }).catch((e) => this.log.warn(`compaction failed, will retry later: ${(e as Error).message}`));
  }

  /**
   * Delete every record older than threshold (gracedone). A healthy store is
   * compacted at the same time; a damaged one gets journal deletions instead,
   * so that nothing an administrator may still want to salvage is thrown away.
   */
  async gracedone(threshold: bigint): Promise<number> {
    const limit = threshold > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(threshold);
    const old = (r: RecState) => r.time < limit;
    return this.locked(async () => {
      await this.createFiles();
      const view = await this.prepareForWrite();
      try {
        // Grace is over for the cld epochs too: clients that did not reclaim
        // (their time is older than limit) go, and so does the recovery epoch.
        const ended = graceEnded(view.epochs);
        if (!view.healthy) {
          return await this.deleteByJournal(view, [...view.facts.overlay].filter(([id, o]) => o.state && old(o.state) && view.get(id)).map(([id]) => id), ended);
        }
        if (view.facts.current.length === 0 && view.epochs.recovery === 0 && !this.anyRecord(view, old)) return 0;
        try {
          return await this.compactLocked(view, limit, ended);
        } catch (e) {
          if (!(e instanceof SnapshotNotWritten)) throw e;
          // No room for a new snapshot (a nearly full disk): an expired
          // client must not stay reclaimable for that, and a few journal
          // lines fit where a whole snapshot does not.
          const doomed: string[] = [];
          for (const r of this.records(view)) if (old(r)) doomed.push(r.id);
          this.log.warn(`${e.message}: deleting the ${doomed.length} expired client(s) by journal entries instead`);
          return await this.deleteByJournal(view, doomed, ended);
        }
      } finally {
        view.close();
      }
    });
  }

  /** Fold the journal into a new snapshot now. Returns false on a damaged store. */
  async compact(): Promise<boolean> {
    return this.locked(async () => {
      await this.createFiles();
      const view = await this.prepareForWrite();
      try {
        if (!view.healthy) return false;
        await this.compactLocked(view);
        return true;
      } finally {
        view.close();
      }
    });
  }

  /**
   * Replace every record at once, atomically (import, repair): `build` gets
   * the current view and returns the new records, sorted by id; `epochsOf`,
   * the new epochs (default: unchanged).
   */
  async replaceAll(build: (view: StoreView) => Iterable<ClientRecord>, epochsOf?: (view: StoreView) => Epochs): Promise<void> {
    await this.locked(async () => {
      await this.createFiles();
      const view = await this.prepareForWrite();
      try {
        const records = build(view);
        await this.writeGeneration(view.gen + 1, epochsOf ? epochsOf(view) : view.epochs, records);
      } finally {
        view.close();
      }
    });
  }

  /**
   * Every live record of a view (of a damaged one, the proven ones), merged
   * and sorted, dead memberships dropped (for listing, compaction and the
   * daemon's grace start).
   */
  *records(view: StoreView, olderThan?: number, ep = view.epochs): Generator<ClientRecord> {
    for (const r of this.storedRecords(view, olderThan)) {
      const s = liveState(r, ep);
      if (s === r) yield r;
      else if (s) yield { id: r.id, ...s };
    }
  }

  /**
   * Every client that may reclaim under `ep` (tracking.ts's recoveryMembership),
   * in the order records() gives, with the princhash of its membership in the
   * recovery epoch; for a pass that must build nothing per record (a grace
   * start of 100,000 clients). visit gets the id as hex digits in
   * buf[idStart, idEnd) (none for the empty id) and the princhash as 64 hex
   * digits at buf[ph] (-1: none), valid during the call; false stops the pass.
   */
  eachReclaimable(view: StoreView, ep: Epochs, visit: (buf: Buffer, idStart: number, idEnd: number, ph: number) => boolean): void {
    if (ep.recovery === 0) return;
    const overlay = provenOverlay(view);
    const keys = overlay.map((o) => Buffer.from(o.key, 'latin1'));
    const fromJournal = (o: (typeof overlay)[number]): boolean => {
      const m = recoveryMembership(o.state, ep);
      return !m || visit(Buffer.from(o.id + (m.ph ?? ''), 'latin1'), 0, o.id.length, m.ph === null ? -1 : o.id.length);
    };
    let i = 0;
    const snapshot = view.healthy ? view.snapshot : null;
    if (snapshot) {
      const lines = snapshot.lines();
      const f = newRecordFields();
      const order = new KeyOrder();
      while (lines.next()) {
        const { buf, start } = lines;
        if (!lines.terminated || !decodeRecordAt(buf, start, lines.end, f)) {
          snapshot.damagedSeen++;
          continue;
        }
        if (!order.advance(buf, start, f.keyEnd)) throw new Error(`snapshot is not sorted at ${buf.toString('latin1', start, f.keyEnd)}`);
        let c = 1;
        while (i < overlay.length && (c = compareBytes(buf, start, f.keyEnd, keys[i], 0, keys[i].length)) > 0) if (!fromJournal(overlay[i++])) return;
        // A journal entry for the same id decides that client, in its place.
        if (i < overlay.length && c === 0) {
          if (!fromJournal(overlay[i++])) return;
          continue;
        }
        // recoveryMembership, on the line's fields.
        const ph = f.epoch === ep.recovery ? f.ph : f.olderEpoch === ep.recovery ? f.olderPh : -2;
        if (ph !== -2 && !visit(buf, f.idStart, f.idEnd, ph)) return;
      }
    }
    for (; i < overlay.length; i++) if (!fromJournal(overlay[i])) return;
  }

  private *storedRecords(view: StoreView, olderThan?: number): Generator<ClientRecord> {
    const overlay = provenOverlay(view);
    let i = 0;
    let prevKey: string | null = null;
    if (view.healthy && view.snapshot) {
      // Snapshot lines older than olderThan are skipped; a journal entry for
      // the same id still decides that client, in its place in the order.
      for (const rec of view.snapshot.stream(olderThan)) {
        if (!rec) continue;
        const key = keyOf(rec.id);
        if (prevKey !== null && key <= prevKey) throw new Error(`snapshot is not sorted at ${key}`);
        prevKey = key;
        while (i < overlay.length && overlay[i].key < key) {
          const o = overlay[i++];
          if (o.state) yield { id: o.id, ...o.state };
        }
        if (i < overlay.length && overlay[i].key === key) {
          const o = overlay[i++];
          if (o.state) yield { id: o.id, ...o.state };
        } else {
          yield rec;
        }
      }
    }
    for (; i < overlay.length; i++) {
      const o = overlay[i];
      if (o.state) yield { id: o.id, ...o.state };
    }
  }

  // --- internals -----------------------------------------------------------

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    // Before the lock: a refused directory is not even written a lock into.
    this.vet();
    this.compromised = false;
    const held = await acquireLock(this.dir, {
      ...this.lockOpts,
      onCompromised: (err) => {
        this.compromised = true;
        this.log.error(`lock on ${this.dir} was lost: ${err.message}`);
      },
    });
    this.held = held;
    try {
      await crashPoint('lock-taken');
      return await fn();
    } finally {
      this.held = null;
      held.release();
      await crashPoint('lock-released');
    }
  }

  /** A brand-new store gets an empty snapshot and journal, snapshot first. */
  private async createFiles(): Promise<boolean> {
    if (lexists(this.snapshotPath) || lexists(this.journalPath)) return false;
    createStoreId(this.dir, this.now());
    replaceSmallFile(this.dir, this.snapshotPath, encodeSnapshotHeader({ gen: 1, records: 0, v40: 0, times: 0 }));
    await crashPoint('store-snapshot-created');
    replaceSmallFile(this.dir, this.journalPath, encodeJournalHeader(1));
    await crashPoint('store-created');
    return true;
  }

  /** Under the lock: read, cut a torn tail, and replace a stale or missing journal. */
  private async prepareForWrite(): Promise<StoreView> {
    const view = this.read();
    const j = view.journal;
    const snapGen = view.snapshot?.header?.gen ?? null;
    if (view.facts.stale || (j === null && view.snapshot !== null)) {
      // A journal that is missing (rather than stale: folded into the
      // snapshot) took unknown changes with it: start the new one with a
      // barrier, so the snapshot's records stay unproven. A fresh store's
      // empty first snapshot is the one case where nothing can be unproven.
      const barrier = j === null && !view.facts.healthy;
      const gen = snapGen ?? 0;
      view.close();
      let text = encodeJournalHeader(gen);
      if (barrier) text += encodeJournalEntry({ gen, seq: 1, op: 'lost', id: '', state: null, prev: null });
      replaceSmallFile(this.dir, this.journalPath, text);
      await crashPoint('journal-replaced');
      return this.read();
    }
    if (j && j.parsed.damagedTail) {
      // Terminate the damaged line, so that it stays on record as damage
      // and what we append next is a line of its own.
      this.log.error(`journal ${this.journalPath}: its last line is damaged; keeping it, as damage`);
      const fd = openAppend(this.journalPath);
      try {
        fs.writeSync(fd, '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      await crashPoint('journal-repaired');
      view.close();
      return this.read();
    }
    if (j && j.parsed.tornBytes > 0) {
      this.log.warn(`journal ${this.journalPath}: cutting a torn last write of ${j.parsed.tornBytes} bytes`);
      const fd = openWrite(this.journalPath);
      try {
        fs.ftruncateSync(fd, j.parsed.completeEnd);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      await crashPoint('journal-repaired');
      view.close();
      return this.read();
    }
    return view;
  }

  /** Delete records by journal entries, and move to `epochs`, in one append. */
  private async deleteByJournal(view: StoreView, ids: string[], epochs: Epochs): Promise<number> {
    const tx = new Txn(view, view.journal?.parsed.gen ?? 0, (view.journal?.parsed.lastSeq ?? 0) + 1);
    for (const id of ids) tx.put(id, null);
    tx.setEpochs(epochs);
    if (tx.pending.length > 0) await this.append(tx.pending);
    return ids.length;
  }

  /**
   * Our lock may have been taken over while we were stalled (by a waiter on
   * another host, which can only go by the heartbeat): then write, rename
   * and acknowledge nothing.
   */
  private checkHeld(when: string): void {
    if (this.compromised || (this.held && !this.held.stillHeld())) throw new LockLost(`lost the lock on ${this.dir} ${when}`);
  }

  /** Append entries in one write and make them durable; returns the journal's new size. */
  private async append(entries: JournalEntry[]): Promise<number> {
    const data = Buffer.from(entries.map(encodeJournalEntry).join(''), 'latin1');
    this.checkHeld('before writing');
    const fd = openAppend(this.journalPath);
    const before = fs.fstatSync(fd).size;
    try {
      try {
        let done = 0;
        if (crashArmed('journal-torn')) {
          // Test hook: the append is cut short, as by a power cut mid-write.
          fs.writeSync(fd, data, 0, Math.ceil(data.length / 2));
          await crashPoint('journal-torn');
        }
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
      } catch (e) {
        // A short write (ENOSPC) leaves a torn tail: cut it now rather than leave it to the next writer.
        try {
          fs.ftruncateSync(fd, before);
          fs.fsyncSync(fd);
        } catch {
          /* the next writer repairs it */
        }
        throw new ErrnoError(EREMOTEIO, `cannot append to ${this.journalPath}: ${(e as Error).message}`);
      }
      await crashPoint('journal-written');
      try {
        fs.fdatasyncSync(fd);
      } catch (e) {
        throw new ErrnoError(EREMOTEIO, `cannot sync ${this.journalPath}: ${(e as Error).message}`);
      }
      await crashPoint('journal-fsynced');
      // The write may have gone to a journal another writer has already folded away.
      this.checkHeld('while writing');
      if (fs.lstatSync(this.journalPath).ino !== fs.fstatSync(fd).ino) throw new LockLost(`${this.journalPath} was replaced while writing`);
      this.lastWritten = { gen: entries[0].gen, seq: entries[entries.length - 1].seq };
      return before + data.length;
    } finally {
      fs.closeSync(fd);
    }
  }

  private anyRecord(view: StoreView, match: (r: RecState) => boolean): boolean {
    for (const r of this.records(view)) if (match(r)) return true;
    return false;
  }

  /**
   * Write a new snapshot (gen + 1) of every record `keep` does not drop, then
   * start a fresh journal. A crash before the rename leaves the old pair; after
   * it, the old journal's gen is older than the snapshot's, so it is ignored.
   */
  private async compactLocked(view: StoreView, olderThan?: number, epochs = view.epochs): Promise<number> {
    // A damaged view proves only part of the store: folding it would drop the rest, and the journal with the damage.
    if (!view.healthy) throw new ErrnoError(EREMOTEIO, `not compacting the damaged store ${this.dir} (${view.problems.join('; ')})`);
    let removed = 0;
    const kept = (function* (all: Iterable<ClientRecord>) {
      for (const r of all) {
        if (olderThan !== undefined && r.time < olderThan) removed++;
        else yield r;
      }
    })(this.records(view, olderThan, epochs));
    await this.writeGeneration(view.gen + 1, epochs, kept, () => (view.snapshot?.damagedSeen ?? 0) > 0);
    removed += view.snapshot?.skipped ?? 0;
    this.log.debug(() => `compacted ${this.dir} to gen ${view.gen + 1}, ${removed} record(s) removed`);
    return removed;
  }

  /** Write `records` as snapshot `gen`, rename it into place, and start journal `gen`. */
  private async writeGeneration(gen: number, epochs: Epochs, records: Iterable<ClientRecord>, keepOld = () => false): Promise<void> {
    const tmp = path.join(this.dir, SNAPSHOT_TMP_NAME);
    await crashPoint('compaction-started');
    try {
      writeSnapshotFile(tmp, gen, epochs, this.held ? withHeartbeat(records, this.held) : records);
      this.held?.beat();
      await crashPoint('snapshot-temp-written');
      this.checkHeld('before renaming a new snapshot in');
      if (keepOld() && fs.existsSync(this.snapshotPath)) this.keepDamaged();
      fs.renameSync(tmp, this.snapshotPath);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e instanceof LockLost ? e : new SnapshotNotWritten(`cannot write a new snapshot: ${(e as Error).message}`);
    }
    await crashPoint('snapshot-renamed');
    fsyncDir(this.dir);
    await crashPoint('dir-fsynced');
    this.checkHeld('before resetting the journal');
    replaceSmallFile(this.dir, this.journalPath, encodeJournalHeader(gen));
    await crashPoint('journal-reset');
    this.lastWritten = { gen, seq: 0 };
    // A store older than its id gets one here (a compaction is rare: nothing on the hot path).
    createStoreId(this.dir, this.now());
  }

  /** Keep a damaged snapshot for the administrator before replacing it. */
  private keepDamaged(): void {
    const aside = `${this.snapshotPath}.damaged-${Date.now()}`;
    fs.linkSync(this.snapshotPath, aside);
    this.log.error(`snapshot ${this.snapshotPath} had damaged lines; kept a copy as ${aside}`);
  }
}
