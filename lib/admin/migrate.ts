// `import` (nfs-utils' SQLite stores into ours) and `export` (ours into an
// nfsdcltrack schema-2 main.sqlite), plus importIfLegacy() for `init`.
import * as fs from 'fs';
import * as path from 'path';
import type { ClientRecord } from '../store/format';
import { fsyncDir } from '../store/fsutil';
import { JOURNAL_NAME, SNAPSHOT_NAME, Store, type StoreLog } from '../store/store';
import { viewRecords } from './inspect';
import { buildTrackDb, LEGACY_DB_NAME, LegacyError, readLegacyDb, type LegacyDb } from './sqlite';
import { fileStamp, sameRecord, sortRecords } from './util';

export class Refused extends Error {}

export interface ImportResult {
  source: LegacyDb;
  /** Records in the store afterwards. */
  total: number;
  /** Records the import added or changed. */
  changed: number;
  /** The store already held exactly these records: nothing was written. */
  unchanged: boolean;
}

/** Merge: per client, the newer record wins (a later time, then v4.1+ over v4.0). */
function mergeRecords(current: ClientRecord[], incoming: ClientRecord[]): ClientRecord[] {
  const m = new Map<string, ClientRecord>();
  for (const r of current) m.set(r.id, r);
  for (const r of incoming) {
    const c = m.get(r.id);
    if (!c || r.time > c.time || (r.time === c.time && r.session && !c.session)) m.set(r.id, r);
  }
  return sortRecords([...m.values()]);
}

/**
 * Import an nfs-utils database into the store, atomically (one new snapshot
 * generation via Store.replaceAll, under the lock). Refuses a store that
 * holds other records unless `merge`; importing what the store already holds
 * changes nothing (idempotent).
 */
export async function importDb(store: Store, source: string, merge: boolean, db?: LegacyDb): Promise<ImportResult> {
  const src = db ?? (await readLegacyDb(source));
  // Ids are unique in the source (PRIMARY KEY), but a TEXT id and a BLOB id
  // can spell the same bytes: keep the newest.
  const incoming = mergeRecords([], src.records);
  let result: ImportResult | null = null;
  // Checked first without the lock, to avoid a needless write...
  const pre = store.read();
  try {
    if (!pre.healthy) throw new Refused(`the store in ${store.dir} is damaged (${pre.problems.join('; ')}): run 'nfsdcltrack verify --repair' first`);
    const { records } = viewRecords(store, pre);
    if (records.length === incoming.length && records.every((r, i) => sameRecord(r, incoming[i]))) {
      return { source: src, total: records.length, changed: 0, unchanged: true };
    }
  } finally {
    pre.close();
  }
  // ...and again under it, where the decision counts.
  class Same extends Error {}
  try {
    await store.replaceAll((view) => {
      if (!view.healthy) throw new Refused(`the store in ${store.dir} is damaged (${view.problems.join('; ')}): run 'nfsdcltrack verify --repair' first`);
      const { records, damagedLines, unsorted } = viewRecords(store, view);
      if (damagedLines > 0 || unsorted) throw new Refused(`the store in ${store.dir} has damaged snapshot lines: run 'nfsdcltrack verify --repair' first`);
      if (records.length === incoming.length && records.every((r, i) => sameRecord(r, incoming[i]))) throw new Same();
      if (records.length > 0 && !merge) {
        throw new Refused(`the store in ${store.dir} already holds ${records.length} client(s): use --merge to add the imported ones to them`);
      }
      const merged = merge ? mergeRecords(records, incoming) : incoming;
      const before = new Map(records.map((r) => [r.id, r]));
      const changed = merged.filter((r) => {
        const b = before.get(r.id);
        return !b || !sameRecord(b, r);
      }).length;
      result = { source: src, total: merged.length, changed, unchanged: false };
      return merged;
    });
  } catch (e) {
    if (e instanceof Same) return { source: src, total: incoming.length, changed: 0, unchanged: true };
    throw e;
  }
  return result!;
}

export interface ExportResult {
  file: string;
  records: number;
  movedAside: string[];
}

/**
 * Write the store's records as an nfsdcltrack schema-2 main.sqlite (the C
 * program opens it as is). Written to a temporary file, fsync'ed, renamed
 * into place, directory fsync'ed. An existing file is replaced only with
 * `force`; a rollback journal or WAL beside it (which SQLite would apply to
 * the new file) is then moved aside, never deleted.
 */
export async function exportDb(store: Store, target: string, force: boolean): Promise<ExportResult> {
  let file = target;
  try {
    if (fs.statSync(target).isDirectory()) file = path.join(target, LEGACY_DB_NAME);
  } catch {
    /* a new file */
  }
  const view = store.read();
  let records: ClientRecord[];
  try {
    if (!view.healthy) throw new Refused(`the store in ${store.dir} is damaged (${view.problems.join('; ')}): run 'nfsdcltrack verify --repair' first`);
    const r = viewRecords(store, view);
    if (r.damagedLines > 0 || r.unsorted) throw new Refused(`the store in ${store.dir} has damaged snapshot lines: run 'nfsdcltrack verify --repair' first`);
    records = r.records;
  } finally {
    view.close();
  }
  const exists = fs.existsSync(file);
  if (exists && !force) throw new Refused(`${file} exists: use --force to replace it`);
  const sidecars = ['-journal', '-wal', '-shm'].map((s) => file + s).filter((p) => fs.existsSync(p));
  if (sidecars.length > 0 && !force) throw new Refused(`${sidecars.join(', ')} exist(s) beside ${file}: SQLite would apply it to the new database; use --force to move it aside`);
  const data = await buildTrackDb(records);
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.export-${process.pid}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  const movedAside: string[] = [];
  const stamp = fileStamp();
  for (const s of sidecars) {
    const dst = `${s}.stale-${stamp}`;
    fs.renameSync(s, dst);
    movedAside.push(dst);
  }
  fs.renameSync(tmp, file);
  fsyncDir(dir);
  return { file, records: records.length, movedAside };
}

/**
 * For `init` (not wired here): a storage dir holding nfs-utils' main.sqlite
 * and none of our records is one an administrator has just switched from the
 * C nfsdcltrack. Import its records so that no client loses its right to
 * reclaim, and leave main.sqlite untouched (the way back, and evidence).
 *
 * Imported when: main.sqlite exists, and the store has no files yet or is
 * still the empty generation-1 store that init creates (no record, no
 * journal entry: also the state a crash during a previous import leaves, as
 * the import writes generation 2 in one rename). Never again once the store
 * has moved on, so records that gracedone removed are never resurrected.
 *
 * Returns the number of records imported, or null when there was nothing to
 * do. Throws on an unreadable database; the caller logs it loudly and goes on
 * (the store then refuses those clients: fail safe).
 */
export async function importIfLegacy(dir: string, log?: StoreLog): Promise<number | null> {
  const legacy = path.join(dir, LEGACY_DB_NAME);
  if (!fs.existsSync(legacy)) return null;
  const store = new Store({ dir, log });
  const hasFiles = fs.existsSync(path.join(dir, SNAPSHOT_NAME)) || fs.existsSync(path.join(dir, JOURNAL_NAME));
  if (hasFiles) {
    const view = store.read();
    try {
      const fresh = view.healthy && view.gen <= 1 && (view.journal?.parsed.entries.length ?? 0) === 0 && (view.snapshot?.header?.records ?? 0) === 0;
      if (!fresh) return null;
    } finally {
      view.close();
    }
  }
  let db: LegacyDb;
  try {
    db = await readLegacyDb(legacy);
  } catch (e) {
    if (e instanceof LegacyError) throw new Error(`cannot import ${legacy}: ${e.message}`);
    throw e;
  }
  const r = await importDb(store, legacy, false, db);
  log?.warn(`imported ${r.total} client record(s) from ${legacy} (nfs-utils ${db.kind} schema ${db.schema}); that file is left as it was`);
  return r.total;
}

/**
 * For the daemon's start: what the C programs' stores held, imported into a
 * store that has nothing yet, once, as nfsdcld does at its first start.
 */
export async function importAtDaemonStart(dir: string, _env: Record<string, string | undefined>, log: StoreLog): Promise<void> {
  await importIfLegacy(dir, log);
}
