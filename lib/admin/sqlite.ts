// nfs-utils' SQLite databases: read an nfsdcltrack (schema 1, 2) or nfsdcld
// (schema 1-4) main.sqlite, and write a schema-2 nfsdcltrack or a schema-4
// nfsdcld one.
//
// WHY sql.js (SQLite compiled to WebAssembly) AND NOT better-sqlite3
// Measured on the development machine (2 vCPUs, Node 20.20, 100,000 clients
// of ~30-byte ids; full numbers in docs/admin.md):
//  - install: sql.js 1.16 is one package with no install script (0.7 s);
//    better-sqlite3 12.11 runs prebuild-install, which downloads a binary from
//    GitHub (unreachable here: "getaddrinfo ENOTFOUND github.com"), then falls
//    back to node-gyp: 60 s of C++ compilation, and only because this machine
//    has gcc, make, python3 and Node's headers. An NFS server without a
//    compiler cannot install it at all.
//  - Bun: sql.js runs unchanged; better-sqlite3 fails to load ("'better-sqlite3'
//    is not yet supported in Bun").
//  - speed, 100k rows: sql.js writes a database in ~0.36 s and reads it in
//    ~0.05 s; better-sqlite3 ~0.17 s and ~0.16 s. Either is far inside the
//    5 s import budget.
// sql.js works on an in-memory copy of the file: it reads the whole file and
// writes a whole new one, which suits a migration (we want a private,
// atomically renamed file anyway) and is no cost at 10 MB for 100k clients.
//
// The "inline" build carries the WebAssembly binary inside the JavaScript, so
// the bundle (dist/admin.js) is self-contained: an install that copies dist/
// and no node_modules still runs import and export. It is loaded only by
// those two commands and by a one-time import that finds a main.sqlite; the
// kernel's hot path never loads it.
import * as fs from 'fs';
import * as path from 'path';
import { memberships } from '../tracking';
import { MAX_TIME, validEpochs, type ClientRecord, type Epochs } from '../store/format';

// The subset of sql.js' API used here (the package ships no types).
interface SqlStatement {
  bind(values?: unknown[]): boolean;
  step(): boolean;
  get(): unknown[];
  run(values?: unknown[]): void;
  reset(): void;
  free(): boolean;
}
interface SqlDatabase {
  run(sql: string, params?: unknown[]): SqlDatabase;
  exec(sql: string, params?: unknown[]): { columns: string[]; values: unknown[][] }[];
  prepare(sql: string): SqlStatement;
  export(): Uint8Array;
  close(): void;
}
interface SqlJs {
  Database: new (data?: Uint8Array | Buffer) => SqlDatabase;
}

let sqlPromise: Promise<SqlJs> | null = null;

/** Load sql.js once, lazily. */
export function loadSqlJs(): Promise<SqlJs> {
  if (!sqlPromise) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const init = require('sql.js/dist/sql-wasm-inline.js') as (cfg?: object) => Promise<SqlJs>;
    sqlPromise = init();
  }
  return sqlPromise;
}

export const LEGACY_DB_NAME = 'main.sqlite';

export type LegacyKind = 'nfsdcltrack' | 'nfsdcld';

export interface LegacyDb {
  file: string;
  kind: LegacyKind;
  /** parameters.version */
  schema: number;
  /** nfsdcld: its grace table; its records are members of these epochs. Absent for nfsdcltrack, whose records carry no epoch. */
  epochs?: Epochs;
  records: ClientRecord[];
  /** Rows that could not be taken over, with the reason. */
  skipped: string[];
}

export class LegacyError extends Error {}

/** PATH may be a main.sqlite or the directory holding one. */
export function legacyFile(p: string): string {
  try {
    if (fs.statSync(p).isDirectory()) return path.join(p, LEGACY_DB_NAME);
  } catch {
    /* reported when the file is read */
  }
  return p;
}

/**
 * SQLite's own crash recovery runs when a database is opened by SQLite with
 * its journal beside it; sql.js sees only the main file. A hot rollback
 * journal or a WAL means the main file alone may hold half a transaction.
 */
function checkNoHotJournal(file: string): void {
  for (const suffix of ['-journal', '-wal']) {
    try {
      if (fs.statSync(file + suffix).size > 0) {
        throw new LegacyError(
          `${file}${suffix} exists: the database was left in the middle of a transaction. ` +
            `Let SQLite recover it first (for example: sqlite3 ${file} 'PRAGMA integrity_check'), then retry`,
        );
      }
    } catch (e) {
      if (e instanceof LegacyError) throw e;
    }
  }
}

function bytesHex(v: unknown): string | null {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (typeof v === 'string') return Buffer.from(v, 'utf8').toString('hex');
  return null;
}

/** A row's client id in hex; null (and the reason in `skipped`) when it cannot be one. */
function rowId(v: unknown, where: string, skipped: string[]): string | null {
  const id = bytesHex(v);
  if (id === null) skipped.push(`a row of ${where} with no id`);
  else if (id.length > 2048) skipped.push(`${id.slice(0, 32)}...: id longer than 1024 bytes`);
  else return id;
  return null;
}

/** nfsdcld's epochs are u64s stored as SQLite's signed integers; ours are exact JavaScript numbers. */
function epochNumber(file: string, v: unknown): number {
  const n = BigInt.asUintN(64, BigInt(typeof v === 'number' ? Math.trunc(v) : String(v ?? 0)));
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new LegacyError(`${file}: epoch ${n} is beyond what this program stores`);
  return Number(n);
}

const recTableOf = (epoch: number): string => `rec-${epoch.toString(16).padStart(16, '0')}`;

/** The clients of one epoch's rec- table, by id, with their princhash (64 hex digits, or null). */
function readRecTable(db: SqlDatabase, file: string, tables: Map<string, string[]>, epoch: number, skipped: string[]): Map<string, string | null> {
  // nfsdcld itself renames tables whose epoch is not zero-padded: match by value.
  const table = [...tables.keys()].find((name) => {
    const m = /^rec-([0-9a-fA-F]{1,16})$/.exec(name);
    return m !== null && BigInt('0x' + m[1]) === BigInt(epoch);
  });
  if (table === undefined) throw new LegacyError(`${file}: no table ${recTableOf(epoch)} for epoch ${epoch}`);
  const hasPh = tables.get(table)!.includes('princhash');
  const out = new Map<string, string | null>();
  const st = db.prepare(`SELECT id${hasPh ? ', princhash' : ''} FROM "${table}"`);
  try {
    while (st.step()) {
      const row = st.get();
      const id = rowId(row[0], table, skipped);
      if (id === null) continue;
      // nfsdcld never sends an empty id (it skips the row at grace start).
      if (id === '') {
        skipped.push(`a row of ${table} with an empty id`);
        continue;
      }
      const ph = hasPh && row[1] !== null ? bytesHex(row[1]) : null;
      // A princhash that is not a SHA-256 cannot be checked: the client is left out (refused), not let in unchecked.
      if (ph !== null && ph.length !== 64 && ph.length !== 0) skipped.push(`${id}: princhash of ${ph.length / 2} bytes in ${table}`);
      else out.set(id, ph || null);
    }
  } finally {
    st.free();
  }
  return out;
}

/** Read the clients an nfs-utils database would let reclaim. */
export async function readLegacyDb(pathOrDir: string): Promise<LegacyDb> {
  const file = legacyFile(pathOrDir);
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (e) {
    throw new LegacyError(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (data.length < 16 || data.toString('latin1', 0, 16) !== 'SQLite format 3\0') {
    throw new LegacyError(`${file} is not an SQLite database`);
  }
  checkNoHotJournal(file);
  const SQL = await loadSqlJs();
  let db: SqlDatabase;
  try {
    db = new SQL.Database(data);
  } catch (e) {
    throw new LegacyError(`cannot open ${file}: ${(e as Error).message}`);
  }
  try {
    return readOpen(db, file);
  } catch (e) {
    if (e instanceof LegacyError) throw e;
    throw new LegacyError(`cannot read ${file}: ${(e as Error).message}`);
  } finally {
    db.close();
  }
}

function readOpen(db: SqlDatabase, file: string): LegacyDb {
  const tables = new Map<string, string[]>();
  for (const row of db.exec(`SELECT name FROM sqlite_master WHERE type = 'table'`)[0]?.values ?? []) {
    const name = String(row[0]);
    const cols = (db.exec(`PRAGMA table_info("${name.replace(/"/g, '""')}")`)[0]?.values ?? []).map((c) => String(c[1]));
    tables.set(name, cols);
  }
  if (!tables.has('parameters')) throw new LegacyError(`${file}: no parameters table: not an nfsdcltrack or nfsdcld database`);
  const v = db.exec(`SELECT value FROM parameters WHERE key = 'version'`)[0]?.values?.[0]?.[0];
  const schema = Number(v);
  if (!Number.isInteger(schema) || schema < 1) throw new LegacyError(`${file}: no valid schema version in parameters (${String(v)})`);
  const skipped: string[] = [];

  if (tables.has('grace')) {
    // nfsdcld (its schema 3-4; 1 and 2 are nfsdcltrack-like databases it has not upgraded yet).
    if (schema > 4) throw new LegacyError(`${file}: nfsdcld schema version ${schema} is newer than this program knows (4)`);
    const g = db.exec('SELECT current, recovery FROM grace')[0]?.values?.[0];
    if (!g) throw new LegacyError(`${file}: the grace table is empty`);
    const epochs = { current: epochNumber(file, g[0]), recovery: epochNumber(file, g[1]) };
    if (!validEpochs(epochs)) throw new LegacyError(`${file}: impossible epochs (current ${epochs.current}, recovery ${epochs.recovery})`);
    // Both live epochs are read, so that a grace period in progress survives
    // the switch: the recovery epoch's clients may still reclaim, and the
    // current one's have already. Tables of other epochs are dead (nfsdcld's
    // next start refuses the database if it finds one).
    const current = readRecTable(db, file, tables, epochs.current, skipped);
    const recovery = epochs.recovery === 0 ? new Map<string, string | null>() : readRecTable(db, file, tables, epochs.recovery, skipped);
    const records: ClientRecord[] = [];
    for (const id of new Set([...current.keys(), ...recovery.keys()])) {
      // nfsdcld keeps no time and no protocol version: time 0 (gracedone
      // drops the client unless it reclaims) and v4.0 (so that no grace
      // period ends early on its account; its next create corrects it).
      const inRec = recovery.has(id) ? { epoch: epochs.recovery, ph: recovery.get(id)! } : null;
      if (current.has(id)) records.push({ id, time: 0, session: false, epoch: epochs.current, ph: current.get(id)!, older: inRec });
      else records.push({ id, time: 0, session: false, epoch: inRec!.epoch, ph: inRec!.ph, older: null });
    }
    return { file, kind: 'nfsdcld', schema, epochs, records, skipped };
  }

  const cols = tables.get('clients');
  if (!cols) throw new LegacyError(`${file}: neither a clients table (nfsdcltrack) nor a grace table (nfsdcld)`);
  if (schema > 2) throw new LegacyError(`${file}: nfsdcltrack schema version ${schema} is newer than this program knows (2)`);
  if (!cols.includes('id') || !cols.includes('time')) throw new LegacyError(`${file}: the clients table lacks id or time`);
  const hasSession = cols.includes('has_session');
  const records: ClientRecord[] = [];
  const st = db.prepare(`SELECT id, time${hasSession ? ', has_session' : ''} FROM clients`);
  try {
    while (st.step()) {
      const row = st.get();
      const id = rowId(row[0], 'clients', skipped);
      if (id === null) continue;
      let time = typeof row[1] === 'number' ? Math.trunc(row[1]) : Number(row[1] ?? 0);
      if (!Number.isFinite(time) || time < 0) {
        skipped.push(`${id}: time ${String(row[1])} taken as 0`);
        time = 0;
      } else if (time > MAX_TIME) {
        skipped.push(`${id}: time ${String(row[1])} taken as ${MAX_TIME}`);
        time = MAX_TIME;
      }
      // has_session is NULL in rows a schema-1 database had before its
      // upgrade, and absent in schema 1: taken as v4.0, the safe reading (a
      // v4.0 record never lets grace end early; a v4.1+ client's next create
      // marks it v4.1+).
      records.push({ id, time, session: hasSession && Number(row[2]) === 1 });
    }
  } finally {
    st.free();
  }
  return { file, kind: 'nfsdcltrack', schema, records, skipped };
}

/** A new database: `schema` (DDL and fixed rows), one prepared INSERT per row of `rows`, then `after`. */
async function buildDb(schema: string[], insert: string, rows: Iterable<unknown[]>, after: string[] = []): Promise<Uint8Array> {
  const SQL = await loadSqlJs();
  const db = new SQL.Database();
  try {
    for (const sql of schema) db.run(sql);
    db.run('BEGIN');
    const st = db.prepare(insert);
    try {
      for (const r of rows) st.run(r);
    } finally {
      st.free();
    }
    for (const sql of after) db.run(sql);
    db.run('COMMIT');
    return db.export();
  } finally {
    db.close();
  }
}

/** A schema-2 nfsdcltrack database holding `records`, as the C program creates it. */
export function buildTrackDb(records: Iterable<ClientRecord>): Promise<Uint8Array> {
  return buildDb(
    [
      'CREATE TABLE parameters (key TEXT PRIMARY KEY, value TEXT);',
      'CREATE TABLE clients (id BLOB PRIMARY KEY, time INTEGER, has_session INTEGER);',
      `INSERT OR FAIL INTO parameters values ('version', '2');`,
    ],
    'INSERT INTO clients VALUES (?, ?, ?)',
    (function* () {
      for (const r of records) yield [Buffer.from(r.id, 'hex'), r.time, r.session ? 1 : 0];
    })(),
  );
}

/**
 * A schema-4 nfsdcld database, as nfsdcld creates and keeps it: the grace
 * table holding `epochs`, one rec- table per live epoch with each client's
 * princhash, and first_time 0, so that its start does not import the C
 * nfsdcltrack's records and the recovery directory again (ours did, once).
 * Records carry no time or protocol version there: nfsdcld keeps none.
 */
export function buildCldDb(records: Iterable<ClientRecord>, epochs: Epochs): Promise<Uint8Array> {
  const live = epochs.recovery === 0 ? [epochs.current] : [epochs.current, epochs.recovery];
  return buildDb(
    [
      'CREATE TABLE parameters (key TEXT PRIMARY KEY, value TEXT);',
      'CREATE TABLE grace (current INTEGER , recovery INTEGER);',
      `INSERT OR FAIL INTO grace values (${epochs.current}, ${epochs.recovery});`,
      ...live.map((e) => `CREATE TABLE "${recTableOf(e)}" (id BLOB PRIMARY KEY, princhash BLOB);`),
      `INSERT OR FAIL INTO parameters values ('version', '4');`,
      `INSERT OR FAIL INTO parameters values ('first_time', '0');`,
      // One table of (epoch, id, princhash) is split into the rec- tables at the end.
      'CREATE TEMP TABLE m (epoch INTEGER, id BLOB, princhash BLOB);',
    ],
    'INSERT INTO m VALUES (?, ?, ?)',
    (function* () {
      for (const r of records) for (const m of memberships(r, epochs)) yield [m.epoch, Buffer.from(r.id, 'hex'), m.ph === null ? null : Buffer.from(m.ph, 'hex')];
    })(),
    [...live.map((e) => `INSERT INTO "${recTableOf(e)}" SELECT id, princhash FROM m WHERE epoch = ${e};`), 'DROP TABLE m;'],
  );
}
