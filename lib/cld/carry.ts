// The v4.0 clients that reclaimed without telling us, carried from the
// recovery epoch into the current one at GraceDone (nfsd-clients.ts says why
// no Create comes for them), and forgotten again when nfsd forgets them.
//
// The kernel sends a Remove only for a client it marked stable, at a Create
// or an upcall check; a carried client had neither. So the daemon watches
// nfsd's clients/ (inotify) and removes a carried client's record when nfsd
// destroys that client (lease expiry, an admin's "expire"), as the kernel's
// Remove would. Not when nfsd stops: it unlinks the cld pipe before it
// destroys its clients, so a client going while the pipe we serve is no
// longer nfsd's is a shutdown, and the record stays for the next reclaim.
//
// The list of carried clients is kept in the node's state dir
// (carried.<store-id>), with the nfsd instance they were carried for (boot
// id and the pipe's inode): a daemon restarted under the same nfsd removes
// the records of the carried clients that went while it was down; under
// another nfsd (a reboot, a restart, another node) the list is void.
import * as fs from 'fs';
import * as path from 'path';
import type { Logger } from '../log';
import { replaceSmallFile } from '../store/fsutil';
import { seal, unseal } from '../store/format';
import { heldV40Clients, listClients } from './nfsd-clients';

const HEADER = '#nfsdcltrack-carried v1';

/** carried.<store-id>: a sealed header naming the nfsd instance, then one sealed "<id> <dir>" line per client. */
export function encodeCarried(instance: string, carried: Map<string, string>): string {
  let s = seal(`${HEADER} nfsd=${instance}`);
  for (const [id, dir] of carried) s += seal(`${id} ${dir}`);
  return s;
}

/** The list, or null when it is damaged in any line (then nothing is trusted from it). */
export function decodeCarried(text: string): { instance: string; carried: Map<string, string> } | null {
  const lines = text.split('\n');
  if (lines.pop() !== '') return null;
  const head = lines.length > 0 ? unseal(lines[0]) : null;
  const m = head === null ? null : /^#nfsdcltrack-carried v1 nfsd=(\S+)$/.exec(head);
  if (!m) return null;
  const carried = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const body = unseal(line);
    const e = body === null ? null : /^((?:[0-9a-f]{2})+) (\d+)$/.exec(body);
    if (!e) return null;
    carried.set(e[1], e[2]);
  }
  return { instance: m[1], carried };
}

export interface CarryOptions {
  log: Logger;
  /** nfsd's filesystem (/proc/fs/nfsd). */
  nfsdDir: string;
  /** <state-dir>/carried.<store-id>; null when there is none (the store has no id): nothing is carried then. */
  file: string | null;
  /** The nfsd instance we serve now: null when our pipe is not (or no longer) the one nfsd has. */
  instance: () => string | null;
  /** Remove a carried client's record, in turn with the upcalls. */
  forget: (id: string) => void;
}

export class V40Carry {
  /** id -> nfsd's directory for it, for the instance `carriedFor`. */
  private readonly carried = new Map<string, string>();
  private carriedFor: string | null = null;
  private watcher: fs.FSWatcher | null = null;
  private warned = false;

  constructor(private readonly opts: CarryOptions) {}

  private get clientsDir(): string {
    return path.join(this.opts.nfsdDir, 'clients');
  }

  private cannot(why: string): null {
    if (!this.warned) {
      this.warned = true;
      this.opts.log.warn(`${why}: a v4.0 client that only reclaims will be refused after the next restart, as under nfsdcld`);
    }
    return null;
  }

  /**
   * At GraceDone: the v4.0 clients that hold state now (id -> directory), or
   * null (said once) when they cannot be carried: nfsd's list unreadable,
   * no place to keep the list, no pipe.
   */
  held(): Map<string, string> | null {
    if (this.opts.file === null) return this.cannot('the store has no id, so no list of carried clients can be kept');
    if (this.opts.instance() === null) return null;
    const r = heldV40Clients(this.opts.nfsdDir);
    if ('error' in r) return this.cannot(r.error);
    return r.held;
  }

  /**
   * These clients are being carried (GraceDone, before its commit): written
   * down first, so that a crash after the commit leaves no carried record
   * unwatched. False when they cannot be: carry none then.
   */
  keep(kept: Map<string, string>): boolean {
    const instance = this.opts.instance();
    if (instance === null) return false;
    if (kept.size === 0 && this.carried.size === 0) return true;
    const before = new Map(this.carried);
    for (const [id, dir] of kept) this.carried.set(id, dir);
    this.carriedFor = instance;
    if (!this.save()) {
      this.carried.clear();
      for (const [id, dir] of before) this.carried.set(id, dir);
      return false;
    }
    this.watch();
    return true;
  }

  /** The kernel sent a Create or Remove for this client: it tracks it now, and will send its Remove. */
  told(id: string): void {
    if (this.carried.delete(id)) this.changed();
  }

  /** GraceStart: a new nfsd; the clients carried for the old one are gone with it, their records stay. */
  reset(): void {
    if (this.carried.size === 0 && this.carriedFor === null) return;
    this.carried.clear();
    this.carriedFor = null;
    this.unwatch();
  }

  /**
   * The daemon (re)started with its pipe open: take the list back if it was
   * made for this very nfsd, and remove the records of the clients nfsd
   * destroyed while nobody watched.
   */
  resume(): void {
    const instance = this.opts.instance();
    if (this.opts.file === null || instance === null) return;
    let text: string;
    try {
      text = fs.readFileSync(this.opts.file, 'latin1');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log.warn(`cannot read ${this.opts.file}: ${(e as Error).message}`);
      return;
    }
    const list = decodeCarried(text);
    if (list === null) {
      this.opts.log.error(`${this.opts.file} is damaged: the v4.0 clients it lists stay recorded until the next grace period`);
      return;
    }
    if (list.instance !== instance || list.carried.size === 0) return;
    this.carriedFor = instance;
    for (const [id, dir] of list.carried) this.carried.set(id, dir);
    this.opts.log.debug(() => `watching ${list.carried.size} carried v4.0 client(s) again`);
    this.watch();
    this.sweep([...this.carried.values()]);
  }

  close(): void {
    this.unwatch();
  }

  private save(): boolean {
    try {
      // The state dir is made by the unit (StateDirectory=), not here: see docs/ha.md.
      const dir = path.dirname(this.opts.file!);
      replaceSmallFile(dir, this.opts.file!, encodeCarried(this.carriedFor ?? '-', this.carried));
      return true;
    } catch (e) {
      this.cannot(`cannot write ${this.opts.file}: ${(e as Error).message}`);
      return false;
    }
  }

  private changed(): void {
    this.save();
    if (this.carried.size === 0) this.unwatch();
  }

  private watch(): void {
    if (this.watcher || this.carried.size === 0) return;
    try {
      // Only creation and removal matter ('rename'); nfsd never renames.
      this.watcher = fs.watch(this.clientsDir, (event, file) => {
        if (event === 'rename') this.sweep(file ? [file.toString()] : [...this.carried.values()]);
      });
      this.watcher.on('error', (e) => this.opts.log.error(`stopped watching ${this.clientsDir}: ${e.message}`));
    } catch (e) {
      // Cannot happen once held() read the list; if it does, the records stay until the next grace period.
      this.opts.log.error(`cannot watch ${this.clientsDir}: ${(e as Error).message}`);
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  /** Directories that may have gone: a carried client whose one did, under the nfsd we serve, is forgotten. */
  private sweep(dirs: string[]): void {
    const gone = [...this.carried].filter(([, dir]) => dirs.includes(dir) && !fs.existsSync(path.join(this.clientsDir, dir)));
    if (gone.length === 0 || this.opts.instance() !== this.carriedFor) return;
    // A client that came back under the same name (a new instance of it) is the kernel's to track.
    const listed = listClients(this.opts.nfsdDir, () => false);
    const present = new Set('clients' in listed ? listed.clients.map((c) => c.id) : []);
    for (const [id, dir] of gone) {
      this.carried.delete(id);
      if (present.has(id)) continue;
      this.opts.log.debug(() => `carried v4.0 client ${id} (nfsd's client ${dir}) is gone: its record is removed`);
      this.opts.forget(id);
    }
    this.changed();
  }
}
