// A power-cut model built from the real program's system calls. The program
// runs under `strace -f -xx -y`; every call that touches the storage dir
// (open, write, pwrite64, ftruncate, fsync, fdatasync, rename, unlink, link,
// close) is replayed here against an in-memory model of the directory that
// keeps, per file and for the directory itself, what is durable (made so by an
// fsync/fdatasync of that file, or of the directory for its names) apart from
// what is only in the page cache. After any prefix of the calls, a power cut
// leaves the durable state, or (as real file systems may) the durable state
// plus some prefix of each object's later changes; all those states can be
// written out and read back by the store.
import * as fs from 'fs';
import * as path from 'path';

interface Inode {
  vol: Buffer;
  /** Content as of the last fsync. */
  dur: Buffer;
  /** Content after each change since then, oldest first. */
  history: Buffer[];
}
type Entries = Map<string, number>;

export interface Snapshot {
  /** Files (name -> content) a power cut at this instant leaves, in the pessimistic model. */
  durable: Map<string, Buffer>;
  /** What a SIGKILL at this instant leaves (everything written so far). */
  volatile: Map<string, Buffer>;
  /** Intermediate states: durable, plus a prefix of each file's later writes and any subset of the directory's later changes. */
  mixed: Map<string, Buffer>[];
  /** The call just replayed. */
  call: string;
}

const unhex = (s: string): Buffer => Buffer.from(s.replace(/\\x([0-9a-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
const unhexStr = (s: string) => unhex(s).toString('latin1');

/** Join strace's "<unfinished ...>" / "<... resumed>" halves; drop the pid prefix. */
function joinLines(text: string): string[] {
  const pending = new Map<string, string>();
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, pid, rest] = m;
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(pid, rest.slice(0, -'<unfinished ...>'.length));
      continue;
    }
    const r = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (r) {
      out.push((pending.get(pid) ?? '') + r[1]);
      pending.delete(pid);
      continue;
    }
    out.push(rest);
  }
  return out;
}

/** Every syscall strace lists, parsed: name, raw argument text, result. */
function parseCall(line: string): { name: string; args: string; ret: number } | null {
  const m = /^(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
  if (!m) return null;
  return { name: m[1], args: m[2], ret: Number(m[3]) };
}
const strings = (args: string): string[] => [...args.matchAll(/"((?:\\x[0-9a-f]{2})*)"/g)].map((m) => m[1]);
const fdOf = (args: string): number => Number(/^(\d+)/.exec(args)?.[1] ?? -1);

export class PowerCutModel {
  private inodes = new Map<number, Inode>();
  private vol: Entries = new Map();
  private dur: Entries = new Map();
  /** Directory changes since the last directory fsync: a name set to an inode, or removed. */
  private dirHistory: { name: string; ino: number | null }[] = [];
  private fds = new Map<number, { ino: number | 'dir'; append: boolean; off: number }>();
  private nextIno = 1;
  readonly calls: string[] = [];

  constructor(private readonly dir: string, initial: Map<string, Buffer>) {
    for (const [name, data] of initial) {
      const ino = this.nextIno++;
      this.inodes.set(ino, { vol: Buffer.from(data), dur: Buffer.from(data), history: [] });
      this.vol.set(name, ino);
      this.dur.set(name, ino);
    }
  }

  static readDir(dir: string): Map<string, Buffer> {
    const m = new Map<string, Buffer>();
    if (!fs.existsSync(dir)) return m;
    for (const n of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, n));
      if (st.isFile()) m.set(n, fs.readFileSync(path.join(dir, n)));
    }
    return m;
  }

  private inDir(p: string): string | null {
    if (p === this.dir) return '.';
    return path.dirname(p) === this.dir ? path.basename(p) : null;
  }

  private changeFile(ino: number, f: (b: Buffer) => Buffer): void {
    const node = this.inodes.get(ino)!;
    node.vol = f(node.vol);
    node.history.push(Buffer.from(node.vol));
  }

  private setName(name: string, ino: number | null): void {
    if (ino === null) this.vol.delete(name);
    else this.vol.set(name, ino);
    this.dirHistory.push({ name, ino });
  }

  /** Replay one strace line; returns true when it touched the store. */
  apply(line: string): boolean {
    const c = parseCall(line);
    if (!c || c.ret < 0) return false;
    const s = strings(c.args);
    switch (c.name) {
      case 'openat':
      case 'open': {
        const name = this.inDir(unhexStr(s[0] ?? ''));
        if (name === null) return false;
        if (name === '.') {
          this.fds.set(c.ret, { ino: 'dir', append: false, off: 0 });
          break;
        }
        let ino = this.vol.get(name);
        if (ino === undefined || !this.inodes.has(ino)) {
          if (!/O_CREAT/.test(c.args)) return false; // a directory such as the lock
          ino = this.nextIno++;
          this.inodes.set(ino, { vol: Buffer.alloc(0), dur: Buffer.alloc(0), history: [] });
          this.setName(name, ino);
        } else if (/O_TRUNC/.test(c.args)) {
          this.changeFile(ino, () => Buffer.alloc(0));
        }
        this.fds.set(c.ret, { ino, append: /O_APPEND/.test(c.args), off: 0 });
        break;
      }
      case 'write':
      case 'pwrite64': {
        const f = this.fds.get(fdOf(c.args));
        if (!f || f.ino === 'dir') return false;
        const data = unhex(s[0] ?? '').subarray(0, c.ret);
        const ino = f.ino;
        let at: number;
        if (c.name === 'pwrite64') at = Number(/,\s*(\d+)$/.exec(c.args)![1]);
        else at = f.append ? this.inodes.get(ino)!.vol.length : f.off;
        this.changeFile(ino, (b) => {
          const out = Buffer.alloc(Math.max(b.length, at + data.length));
          b.copy(out);
          data.copy(out, at);
          return out;
        });
        if (c.name === 'write') f.off = at + data.length;
        break;
      }
      case 'ftruncate': {
        const f = this.fds.get(fdOf(c.args));
        if (!f || f.ino === 'dir') return false;
        const len = Number(/,\s*(\d+)$/.exec(c.args)![1]);
        this.changeFile(f.ino, (b) => {
          const out = Buffer.alloc(len);
          b.copy(out, 0, 0, Math.min(len, b.length));
          return out;
        });
        break;
      }
      case 'fsync':
      case 'fdatasync': {
        const f = this.fds.get(fdOf(c.args));
        if (!f) return false;
        if (f.ino === 'dir') {
          this.dur = new Map(this.vol);
          this.dirHistory = [];
        } else {
          const node = this.inodes.get(f.ino)!;
          node.dur = Buffer.from(node.vol);
          node.history = [];
        }
        break;
      }
      case 'close':
        if (!this.fds.delete(fdOf(c.args))) return false;
        break;
      case 'rename':
      case 'renameat':
      case 'renameat2': {
        const [a, b] = s.map((x) => this.inDir(unhexStr(x)));
        if (a === null || b === null || a === undefined || b === undefined) return false;
        const ino = this.vol.get(a);
        if (ino === undefined) return false; // a directory (lock)
        this.setName(b, ino);
        this.setName(a, null);
        break;
      }
      case 'link':
      case 'linkat': {
        const [a, b] = s.map((x) => this.inDir(unhexStr(x)));
        if (!a || !b) return false;
        const ino = this.vol.get(a);
        if (ino === undefined) return false;
        this.setName(b, ino);
        break;
      }
      case 'unlink':
      case 'unlinkat': {
        const name = this.inDir(unhexStr(s[0] ?? ''));
        if (name === null || !this.vol.has(name)) return false;
        this.setName(name, null);
        break;
      }
      default:
        return false;
    }
    this.calls.push(`${c.name} ${s.map((x) => unhexStr(x).slice(0, 40).replace(/\n/g, '\\n')).join(' ')}`.slice(0, 120));
    return true;
  }

  /** The states a crash right now may leave. `rand` picks the mixed ones. */
  states(rand: () => number, mixedCount: number): Snapshot {
    const pick = (entries: Entries, content: (n: Inode) => Buffer) => {
      const m = new Map<string, Buffer>();
      for (const [name, ino] of entries) m.set(name, content(this.inodes.get(ino)!));
      return m;
    };
    const mixed: Map<string, Buffer>[] = [];
    for (let k = 0; k < mixedCount; k++) {
      // Directory changes not yet fsync'ed may reach the disk in any
      // combination (POSIX promises no order): a random subset, in order.
      const entries = new Map(this.dur);
      for (const op of this.dirHistory) {
        if (rand() < 0.5) continue;
        if (op.ino === null) entries.delete(op.name);
        else entries.set(op.name, op.ino);
      }
      mixed.push(
        pick(entries, (n) => {
          const h = n.history.length;
          return h === 0 ? n.dur : [n.dur, ...n.history][Math.floor(rand() * (h + 1))];
        }),
      );
    }
    return {
      durable: pick(this.dur, (n) => n.dur),
      volatile: pick(this.vol, (n) => n.vol),
      mixed,
      call: this.calls[this.calls.length - 1] ?? '(start)',
    };
  }

  /** Replay a whole strace log, collecting the crash states after each store call. */
  static replay(dir: string, initial: Map<string, Buffer>, log: string, rand: () => number, mixedCount = 2): Snapshot[] {
    const model = new PowerCutModel(dir, initial);
    const out = [model.states(rand, mixedCount)];
    for (const line of joinLines(log)) if (model.apply(line)) out.push(model.states(rand, mixedCount));
    return out;
  }
}

export function materialize(dir: string, files: Map<string, Buffer>): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, data] of files) fs.writeFileSync(path.join(dir, name), data, { mode: 0o600 });
}
