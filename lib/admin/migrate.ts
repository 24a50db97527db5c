// `import` (nfs-utils' SQLite stores into ours), `export` (ours into an
// nfsdcltrack schema-2 or nfsdcld schema-4 main.sqlite), and the one-time
// imports of `init` (importIfLegacy) and of the daemon's first start
// (importAtDaemonStart).
import * as fs from 'fs';
import * as path from 'path';
import { loadConf } from '../config';
import { INITIAL_EPOCHS, type ClientRecord, type Epochs, type Membership } from '../store/format';
import { fsyncDir } from '../store/fsutil';
import { Store, type StoreLog, type StoreView } from '../store/store';
import { memberships } from '../tracking';
import { viewRecords } from './inspect';
import { buildCldDb, buildTrackDb, LEGACY_DB_NAME, LegacyError, readLegacyDb, type LegacyDb } from './sqlite';
import { fileStamp, sameRecord, sortRecords } from './util';

export class Refused extends Error {}

export interface ImportResult {
  /** Records in the store afterwards. */
  total: number;
  /** Records the import added or changed. */
  changed: number;
  /** The store already held exactly these records: nothing was written. */
  unchanged: boolean;
  /** The store's epochs afterwards. */
  epochs: Epochs;
}

/** What an import brings: records, and for an nfsdcld database the epochs they are members of. */
interface Incoming {
  records: ClientRecord[];
  /** Absent: the records carry no epoch of their own (nfsdcltrack, the recovery directory); they go into the current one. */
  epochs?: Epochs;
}

/** The record with these memberships (newest first); null when none. */
function withMemberships(r: ClientRecord, ms: Membership[]): ClientRecord | null {
  const [head, older] = [...ms].sort((a, b) => b.epoch - a.epoch);
  return head ? { id: r.id, time: r.time, session: r.session, epoch: head.epoch, ph: head.ph, older: older ?? null } : null;
}

/**
 * A source record moved to the target's epochs: a member of the source's
 * current epoch joins the target's current one, a member of its recovery
 * epoch the target's recovery epoch (outside grace, its current one: the
 * client may reclaim at the next grace start, like an nfsdcltrack record).
 */
function renumbered(r: ClientRecord, from: Epochs, to: Epochs): ClientRecord | null {
  const ms = new Map<number, Membership>();
  for (const m of memberships(r, from)) {
    const epoch = m.epoch === from.current ? to.current : to.recovery || to.current;
    if (!ms.has(epoch)) ms.set(epoch, { epoch, ph: m.ph });
  }
  return withMemberships(r, [...ms.values()]);
}

/**
 * Merge, per client: the newer record (a later time, then v4.1+ over v4.0)
 * gives time and version; memberships are united, the newer record's
 * princhash winning in an epoch both are members of.
 */
function mergeRecords(current: ClientRecord[], incoming: ClientRecord[], ep: Epochs): ClientRecord[] {
  const m = new Map<string, ClientRecord>();
  for (const r of current) m.set(r.id, r);
  for (const r of incoming) {
    const c = m.get(r.id);
    const [win, lose] = !c || r.time > c.time || (r.time === c.time && r.session && !c.session) ? [r, c] : [c, r];
    const ms = new Map<number, Membership>();
    for (const x of [...(lose ? memberships(lose, ep) : []), ...memberships(win, ep)]) ms.set(x.epoch, x);
    m.set(r.id, withMemberships(win, [...ms.values()])!);
  }
  return sortRecords([...m.values()]);
}

const damagedRefusal = (store: Store, view: StoreView): Refused =>
  new Refused(`the store in ${store.dir} is damaged (${view.problems.join('; ')}): run 'nfsdcltrack verify --repair' first`);

/** A store that has never held anything: no record, no journal entry, generation 1 (what init creates). */
const isFresh = (view: StoreView): boolean =>
  view.healthy && view.gen <= 1 && (view.journal?.parsed.entries.length ?? 0) === 0 && (view.snapshot?.header?.records ?? 0) === 0;

/**
 * The records and epochs the store will hold: an nfsdcld database brings its
 * epochs into a store it replaces; otherwise the store keeps its own and the
 * incoming records are moved into them.
 */
function target(view: StoreView, store: Store, inc: Incoming, merge: boolean): { before: ClientRecord[]; records: ClientRecord[]; epochs: Epochs; unchanged: boolean } {
  if (!view.healthy) throw damagedRefusal(store, view);
  const { records, damagedLines, unsorted } = viewRecords(store, view);
  if (damagedLines > 0 || unsorted) throw new Refused(`the store in ${store.dir} has damaged snapshot lines: run 'nfsdcltrack verify --repair' first`);
  const epochs = inc.epochs && !merge ? inc.epochs : view.epochs;
  const moved = inc.records.map((r) => renumbered(r, inc.epochs ?? INITIAL_EPOCHS, epochs)).filter((r) => r !== null);
  // Ids are unique in a source (PRIMARY KEY), but a TEXT id and a BLOB id can spell the same bytes: merged too.
  const incoming = mergeRecords([], moved, epochs);
  const same = (a: ClientRecord[]) => a.length === incoming.length && a.every((r, i) => sameRecord(r, incoming[i]));
  if (same(records) && epochs.current === view.epochs.current && epochs.recovery === view.epochs.recovery) return { before: records, records, epochs, unchanged: true };
  if (records.length > 0 && !merge) {
    throw new Refused(`the store in ${store.dir} already holds ${records.length} client(s): use --merge to add the imported ones to them`);
  }
  return { before: records, records: merge ? mergeRecords(records, incoming, epochs) : incoming, epochs, unchanged: false };
}

/**
 * Import records into the store, atomically (one new snapshot generation via
 * Store.replaceAll, under the lock). Refuses a store that holds other
 * records unless `merge`; importing what the store already holds changes
 * nothing (idempotent). `onlyIfFresh`: do nothing (null) unless the store
 * has never held anything, decided under the lock.
 */
async function importRecords(store: Store, inc: Incoming, merge: boolean, onlyIfFresh = false): Promise<ImportResult | null> {
  // Checked first without the lock, to avoid a needless write...
  const pre = store.read();
  try {
    if (onlyIfFresh && !isFresh(pre)) return null;
    const t = target(pre, store, inc, merge);
    if (t.unchanged) return { total: t.records.length, changed: 0, unchanged: true, epochs: t.epochs };
  } finally {
    pre.close();
  }
  // ...and again under it, where the decision counts.
  class Skip extends Error {}
  let result: ImportResult | null = null;
  try {
    await store.replaceAll(
      (view) => {
        if (onlyIfFresh && !isFresh(view)) throw new Skip();
        const t = target(view, store, inc, merge);
        const before = new Map(t.before.map((r) => [r.id, r]));
        const changed = t.records.filter((r) => !before.has(r.id) || !sameRecord(before.get(r.id)!, r)).length;
        result = { total: t.records.length, changed, unchanged: t.unchanged, epochs: t.epochs };
        if (t.unchanged) throw new Skip();
        return t.records;
      },
      () => result!.epochs,
    );
  } catch (e) {
    if (e instanceof Skip) return result;
    throw e;
  }
  return result;
}

/** Import an nfs-utils database (read unless given) into the store: see importRecords. */
export async function importDb(store: Store, source: string, merge: boolean, db?: LegacyDb): Promise<ImportResult> {
  const src = db ?? (await readLegacyDb(source));
  return (await importRecords(store, src, merge))!;
}

export interface ExportResult {
  file: string;
  records: number;
  /** The epochs written (nfsdcld's format). */
  epochs: Epochs;
  movedAside: string[];
}

export type ExportFormat = 'nfsdcltrack' | 'nfsdcld';

/**
 * Write the store's live records as an nfsdcltrack schema-2 main.sqlite (the
 * C program opens it as is) or an nfsdcld schema-4 one (Debian's nfsdcld
 * serves it as is, its grace period in progress included). Written to a
 * temporary file, fsync'ed, renamed into place, directory fsync'ed. An
 * existing file is replaced only with `force`; a rollback journal or WAL
 * beside it (which SQLite would apply to the new file) is then moved aside,
 * never deleted.
 */
export async function exportDb(store: Store, dest: string, force: boolean, format: ExportFormat = 'nfsdcltrack'): Promise<ExportResult> {
  let file = dest;
  try {
    if (fs.statSync(dest).isDirectory()) file = path.join(dest, LEGACY_DB_NAME);
  } catch {
    /* a new file */
  }
  const view = store.read();
  let records: ClientRecord[];
  const epochs = view.epochs;
  try {
    if (!view.healthy) throw damagedRefusal(store, view);
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
  const data = format === 'nfsdcld' ? await buildCldDb(records, epochs) : await buildTrackDb(records);
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
  return { file, records: records.length, epochs, movedAside };
}

// --- one-time imports ---------------------------------------------------------

/** What importAtDaemonStart reads when nothing says otherwise: nfs-utils' defaults. */
export const NFSDCLD_DIR = '/var/lib/nfs/nfsdcld';
export const NFSDCLTRACK_DIR = '/var/lib/nfs/nfsdcltrack';
/** Where the kernel says its recovery directory is (nfsdcld reads it from there), and the kernel's default. */
const RECDIR_FILE = '/proc/fs/nfsd/nfsv4recoverydir';
const RECDIR_DEFAULT = '/var/lib/nfs/v4recovery';

const describe = (db: LegacyDb): string =>
  `${db.file} (nfs-utils ${db.kind} schema ${db.schema}${db.epochs ? `, epochs current ${db.epochs.current}, recovery ${db.epochs.recovery}` : ''})`;

/** The store has never held anything (or has no files yet). */
function storeIsFresh(store: Store): boolean {
  if (!fs.existsSync(store.snapshotPath) && !fs.existsSync(store.journalPath)) return true;
  const view = store.read();
  try {
    return isFresh(view);
  } finally {
    view.close();
  }
}

/** The main.sqlite of each dir that has one, read, in order (a dir named twice is read once); throws on an unreadable one. */
async function databasesIn(dirs: string[]): Promise<LegacyDb[]> {
  const out: LegacyDb[] = [];
  for (const dir of new Set(dirs.map((d) => path.resolve(d)))) {
    const file = path.join(dir, LEGACY_DB_NAME);
    if (!fs.existsSync(file)) continue;
    try {
      out.push(await readLegacyDb(file));
    } catch (e) {
      if (e instanceof LegacyError) throw new Error(`cannot import ${file}: ${e.message}`);
      throw e;
    }
  }
  return out;
}

/**
 * The old recovery directory's clients, as nfsdcld's legacy.c loads them:
 * each entry's name (the MD5 hex the kernel named it by) as the client
 * "hash:<name>" with its terminating NUL, which the kernel's cld code
 * matches against the client's legacy name.
 */
function recoveryDirRecords(dir: string): ClientRecord[] {
  let names: Buffer[];
  try {
    names = fs.readdirSync(dir, { encoding: 'buffer' });
  } catch {
    return [];
  }
  return names
    .map((n) => Buffer.concat([Buffer.from('hash:'), n, Buffer.alloc(1)]))
    .filter((id) => id.length <= 1024)
    .map((id) => ({ id: id.toString('hex'), time: 0, session: false }));
}

/**
 * Where the kernel keeps the old recovery directory: NFSDCLTRACK_RECOVERY_DIR
 * (a test hook), else what /proc/fs/nfsd/nfsv4recoverydir says (nfsdcld's
 * source), else the kernel's default (our daemon may start before nfsd's
 * filesystem is mounted).
 */
function recoveryDir(env: Record<string, string | undefined>): string {
  if (env.NFSDCLTRACK_RECOVERY_DIR) return env.NFSDCLTRACK_RECOVERY_DIR;
  try {
    const line = fs.readFileSync(RECDIR_FILE, 'latin1').split('\n')[0];
    if (line !== '') return line;
  } catch {
    /* nfsd's filesystem is not mounted */
  }
  return RECDIR_DEFAULT;
}

/**
 * Import, once, into a store that has never held anything: the first
 * database of `dirs` that nfsdcld wrote (both its epochs), else the first
 * that the C nfsdcltrack wrote plus the recovery directory's clients (into
 * the current epoch). Returns the number of records imported, or null when
 * there was nothing to do.
 *
 * "Never held anything": no files yet, or the empty generation-1 store that
 * init creates (no record, no journal entry: also the state a crash during a
 * previous import leaves, as the import writes generation 2 in one rename).
 * Never again once the store has moved on, so that clients removed since are
 * never resurrected. The sources are left untouched (the way back, and
 * evidence). Throws on an unreadable database; the caller logs it loudly and
 * goes on (the store then refuses those clients: fail safe).
 */
async function importOnce(dir: string, dirs: string[], recdir: string | null, log?: StoreLog): Promise<number | null> {
  const store = new Store({ dir, log });
  if (!storeIsFresh(store)) return null;
  const dbs = await databasesIn(dirs);
  const cld = dbs.find((d) => d.kind === 'nfsdcld');
  // nfsdcld took the C nfsdcltrack's records and the recovery directory in at its own first start.
  const track = cld ? undefined : dbs.find((d) => d.kind === 'nfsdcltrack');
  const legacy = cld || recdir === null ? [] : recoveryDirRecords(recdir);
  const from = [cld ?? track].filter((d) => d !== undefined).map(describe);
  if (legacy.length > 0) from.push(`the recovery directory ${recdir} (${legacy.length} entr${legacy.length === 1 ? 'y' : 'ies'}, as hash:<name>)`);
  if (from.length === 0) return null;
  const inc: Incoming = cld ?? { records: [...(track?.records ?? []), ...legacy] };
  const r = await importRecords(store, inc, false, true);
  // (An nfsdcld database with no client and the epochs the store has changes nothing.)
  if (r === null || r.unchanged) return null;
  log?.warn(`imported ${r.total} client record(s) from ${from.join(' and ')}; left as ${from.length === 1 ? 'it was' : 'they were'}`);
  return r.total;
}

/**
 * For `init`: a storage dir holding nfs-utils' main.sqlite and none of our
 * records is one an administrator has just switched from the C program.
 * Its records are imported (see importOnce) so that no client loses its
 * right to reclaim.
 */
export function importIfLegacy(dir: string, log?: StoreLog): Promise<number | null> {
  return importOnce(dir, [dir], null, log);
}

/**
 * For the daemon's every start: what nfs-utils' trackers held, imported into
 * a store that has never held anything, once (importOnce), as nfsdcld does at
 * its first start. Looked for, in order: main.sqlite in the storage dir
 * itself; in nfsdcld's storage dir (NFSDCLTRACK_NFSDCLD_DIR, a test hook;
 * else [nfsdcld] storagedir of nfs.conf, without our fallback to
 * [nfsdcltrack]; else nfsdcld's default) — an nfsdcld database found there
 * brings both its epochs, so that a grace period in progress survives the
 * switch; else in the C nfsdcltrack's ([nfsdcltrack] storagedir, else its
 * default), with the recovery directory's clients (recoveryDir).
 *
 * The recovery directory is not emptied. nfsdcld empties it at its first
 * grace end, and the C nfsdcltrack's clients table too; we leave both as
 * they were, like main.sqlite: our import never runs twice, so they cannot
 * bring a client back to us, and the kernel's own legacy tracker, should it
 * ever be used again, purges entries that did not reclaim at its grace end.
 */
export function importAtDaemonStart(dir: string, env: Record<string, string | undefined>, log: StoreLog): Promise<number | null> {
  const conf = loadConf(env, (m) => log.warn(m));
  const cldDir = env.NFSDCLTRACK_NFSDCLD_DIR || conf.get('nfsdcld', 'storagedir') || NFSDCLD_DIR;
  const trackDir = conf.get('nfsdcltrack', 'storagedir') || NFSDCLTRACK_DIR;
  return importOnce(dir, [dir, cldDir, trackDir], recoveryDir(env), log);
}
