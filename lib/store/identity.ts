// Who a store is, where it has been, and how far it has got: the facts a
// failover between two servers on shared storage needs (docs/ha.md). Store
// level only: node names and the node-local note's place come from the caller.
//
//   clients.id      #nfsdcltrack-store v1 id=<uuid> created=<time> <crc>
//                   written once, when the store is created (or, for a store
//                   older than the id, at its next init or compaction); never
//                   rewritten, so compaction, import and repair keep it
//   clients.served  <time> <host> <machine-id> <crc>, one line per start of
//                   a server on this store (upcall init, daemon start), the
//                   latest last, at most SERVED_KEEP lines
//   seen.<uuid>     (node-local, outside the store) #nfsdcltrack-seen v1
//                   gen=<gen> seq=<seq> time=<time> <crc>: the furthest
//                   position this node has served the store to
import * as fs from 'fs';
import * as path from 'path';
import { EREMOTEIO, ErrnoError } from '../errno';
import { seal, unseal } from './format';
import { lexists, openRead, readBytes, replaceSmallFile } from './fsutil';

export const ID_NAME = 'clients.id';
export const SERVED_NAME = 'clients.served';
/** Lines kept in clients.served: enough history for an administrator, a few hundred bytes. */
export const SERVED_KEEP = 16;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const isStoreId = (s: string): boolean => UUID.test(s);

/** A store that must not be served: the wrong one, none at all, or one a guard refused. */
export class StoreRefused extends ErrnoError {
  constructor(
    dir: string,
    /** Why, without the store's name: what a guard returns. */
    readonly reason: string,
  ) {
    super(EREMOTEIO, `refusing to serve the store in ${dir}: ${reason}`);
  }
}

/** A small file's text, or null when it does not exist. */
function readSmall(file: string): string | null {
  const fd = openRead(file);
  if (fd === null) return null;
  try {
    return readBytes(fd, 0, 4096).toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
}

export interface StoreIdState {
  id: string | null;
  /** clients.id exists but cannot be read as one. */
  damaged: boolean;
}

export function decodeStoreId(text: string): string | null {
  const body = unseal(text.endsWith('\n') ? text.slice(0, -1) : text);
  const m = body === null ? null : /^#nfsdcltrack-store v1 id=(\S+) created=\d{1,11}$/.exec(body);
  return m && isStoreId(m[1]) ? m[1] : null;
}

/** The store's id, from clients.id: null (missing or damaged) when there is none to trust. */
export function readStoreId(dir: string): StoreIdState {
  const text = readSmall(path.join(dir, ID_NAME));
  if (text === null) return { id: null, damaged: false };
  const id = decodeStoreId(text);
  return id ? { id, damaged: false } : { id: null, damaged: true };
}

/**
 * Give a store its id if it has none (under the store's lock); returns the
 * id, or null when clients.id is damaged: that is kept for the administrator,
 * never silently replaced (a pinned node refuses such a store).
 */
export function createStoreId(dir: string, now: number): string | null {
  const have = readStoreId(dir);
  if (have.id || have.damaged) return have.id;
  // Web Crypto's, not node:crypto's: loading that module costs Bun tens of milliseconds, on every upcall.
  const id = globalThis.crypto.randomUUID();
  replaceSmallFile(dir, path.join(dir, ID_NAME), seal(`#nfsdcltrack-store v1 id=${id} created=${now}`));
  return id;
}

/**
 * Is this the store the caller was pinned to? A reason to refuse it, or null.
 * Cheap: one read of a one-line file.
 */
export function pinVerdict(dir: string, pin: string): string | null {
  if (!isStoreId(pin)) return `the configured store-id '${pin}' is not a UUID: refusing every store`;
  const have = readStoreId(dir);
  if (have.id === pin) return null;
  if (have.id) return `${dir} holds store ${have.id}, not the pinned store ${pin}: the wrong store is mounted there`;
  if (have.damaged) return `${path.join(dir, ID_NAME)} is damaged: cannot tell whether ${dir} holds the pinned store ${pin}`;
  return lexists(dir)
    ? `${dir} holds no store id, not the pinned store ${pin}: is the shared storage mounted?`
    : `${dir} does not exist, so it does not hold the pinned store ${pin}: is the shared storage mounted?`;
}

// --- where the store is in its history --------------------------------------

/** A point in the store's history: the snapshot generation, and the journal entries on top of it. */
export interface Position {
  gen: number;
  seq: number;
}

/** Is a behind b? */
export const isBehind = (a: Position, b: Position): boolean => a.gen < b.gen || (a.gen === b.gen && a.seq < b.seq);

export const formatPosition = (p: Position): string => `gen ${p.gen}, entry ${p.seq}`;

export function encodeSeen(p: Position, time: number): string {
  return seal(`#nfsdcltrack-seen v1 gen=${p.gen} seq=${p.seq} time=${time}`);
}

export function decodeSeen(text: string): (Position & { time: number }) | null {
  const body = unseal(text.endsWith('\n') ? text.slice(0, -1) : text);
  const m = body === null ? null : /^#nfsdcltrack-seen v1 gen=(\d{1,16}) seq=(\d{1,16}) time=(\d{1,11})$/.exec(body);
  return m ? { gen: Number(m[1]), seq: Number(m[2]), time: Number(m[3]) } : null;
}

export const seenPath = (stateDir: string, id: string): string => path.join(stateDir, `seen.${id}`);

export type SeenState = (Position & { time: number }) | 'none' | 'damaged';

export function readSeen(stateDir: string, id: string): SeenState {
  const text = readSmall(seenPath(stateDir, id));
  if (text === null) return 'none';
  return decodeSeen(text) ?? 'damaged';
}

/** Record that this node served the store to p (atomically, fsync'ed). */
export function writeSeen(stateDir: string, id: string, p: Position, time: number): void {
  replaceSmallFile(stateDir, seenPath(stateDir, id), encodeSeen(p, time));
}

// --- which node served it ---------------------------------------------------

export interface Node {
  host: string;
  machineId: string;
}
export interface Served extends Node {
  time: number;
}

/** Host names and machine ids go into a space-separated line: no spaces or controls in them. */
const field = (s: string): string => s.replace(/[\s\x00-\x1f\x7f]/g, '_') || '-';

export function encodeServed(s: Served): string {
  return seal(`${s.time} ${field(s.host)} ${field(s.machineId)}`);
}

export function decodeServed(line: string): Served | null {
  const body = unseal(line);
  const m = body === null ? null : /^(\d{1,11}) (\S+) (\S+)$/.exec(body);
  return m ? { time: Number(m[1]), host: m[2], machineId: m[3] } : null;
}

/** Every readable line of clients.served, oldest first. */
export function readServed(dir: string): Served[] {
  const text = readSmall(path.join(dir, SERVED_NAME));
  if (text === null) return [];
  const out: Served[] = [];
  for (const line of text.split('\n')) {
    const s = line === '' ? null : decodeServed(line);
    if (s) out.push(s);
  }
  return out;
}

/** Add a line for a node starting to serve the store, keeping the last SERVED_KEEP. */
export function recordServed(dir: string, s: Served): void {
  const lines = [...readServed(dir), s].slice(-SERVED_KEEP);
  replaceSmallFile(dir, path.join(dir, SERVED_NAME), lines.map(encodeServed).join(''));
}
