// The kernel's cld pipe, <pipefs>/nfsd/cld: opened read-write as nfsdcld
// opens it, read through the runtime's event loop (epoll: rpc_pipefs' read()
// returns 0 when nothing is queued, so only readiness says a message is
// there), framed header-then-rest, answered with one write per reply.
//
// The kernel removes the pipe when nfsd stops and makes a new one when it
// starts; we watch its directory, as nfsdcld does with inotify, and reopen
// on every re-creation, fast: the kernel waits only ~1 s for an opener
// before it falls back to another tracker. A pseudo-terminal in raw mode
// works in its place (the tests' stand-in, also for Debian's nfsdcld).
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as tty from 'tty';
import type { Logger } from '../log';
import { MessageFramer } from './codec';

export interface PipeOptions {
  /** <pipefs>/nfsd/cld */
  path: string;
  log: Logger;
  onMessage: (msg: Buffer) => void;
}

/** While the pipe's directory is missing (nfsd not loaded), look again this often. */
const DIR_RETRY_MS = 1000;

export class CldPipe {
  private fd = -1;
  /**
   * Replies go through a second, blocking descriptor: the event loop makes
   * the reading one non-blocking, and on a pty a GraceStart's stream of
   * downcalls would then have to poll for room (rpc_pipefs never blocks).
   */
  private wfd = -1;
  private stream: net.Socket | null = null;
  private watcher: fs.FSWatcher | null = null;
  private retry: NodeJS.Timeout | null = null;
  private readonly framer = new MessageFramer();
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private closed = false;
  private lastOpen = 0;

  constructor(private readonly opts: PipeOptions) {}

  /** Watch for the pipe and open it when it is there. */
  start(): void {
    this.watchDir();
    this.open();
  }

  get isOpen(): boolean {
    return this.fd >= 0;
  }

  /** Stop reading (shutdown); replies can still be sent. */
  stopReading(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.retry) clearTimeout(this.retry);
    this.stream?.pause();
  }

  close(): void {
    this.stopReading();
    this.drop();
  }

  /**
   * The pipe we have open, as "dev:ino", if it is still the one at its path:
   * null once nfsd has unlinked it (nfsd stopping) or made a new one.
   */
  identity(): string | null {
    if (this.wfd < 0) return null;
    try {
      const a = fs.fstatSync(this.wfd);
      const b = fs.statSync(this.opts.path);
      return a.dev === b.dev && a.ino === b.ino ? `${a.dev}:${a.ino}` : null;
    } catch {
      return null;
    }
  }

  /** One reply, one write(). */
  send(reply: Buffer): void {
    if (this.wfd < 0) throw new Error('the cld pipe is not open');
    const n = fs.writeSync(this.wfd, reply);
    if (n !== reply.length) throw new Error(`short write to the cld pipe (${n} of ${reply.length} bytes)`);
  }

  /**
   * Read, without waiting, whatever the pipe already holds (rpc_pipefs: 0
   * means nothing is queued; a pty: EAGAIN), so that upcalls waiting together
   * are handled together.
   */
  readWaiting(): void {
    for (let i = 0; i < 1024 && this.fd >= 0 && !this.closed; i++) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.scratch, 0, this.scratch.length, null);
      } catch {
        return;
      }
      if (n <= 0) return;
      this.feed(this.scratch.subarray(0, n));
    }
  }

  private feed(chunk: Buffer): void {
    for (const item of this.framer.push(chunk)) {
      if ('msg' in item) this.opts.onMessage(item.msg);
      else this.opts.log.error(`cld pipe: ${item.error}; message dropped (it cannot be answered)`);
    }
  }

  private watchDir(): void {
    if (this.closed) return;
    const dir = path.dirname(this.opts.path);
    const name = path.basename(this.opts.path);
    try {
      // Only creation and removal ('rename'): every write to the pipe is
      // also a modification event, which must not reopen it.
      this.watcher = fs.watch(dir, (event, file) => {
        if (event === 'rename' && (file === null || file.toString() === name)) this.open();
      });
      this.watcher.on('error', (e) => {
        this.opts.log.warn(`stopped watching ${dir}: ${e.message}`);
        this.watcher?.close();
        this.watcher = null;
        this.retryLater();
      });
    } catch (e) {
      this.opts.log.debug(() => `cannot watch ${dir} yet: ${(e as Error).message}`);
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.watchDir();
      this.open();
    }, DIR_RETRY_MS);
  }

  /** Open the pipe (again): the new one first, then the old one is closed, as nfsdcld does. */
  private open(): void {
    if (this.closed) return;
    let fd: number;
    let wfd: number;
    try {
      fd = fs.openSync(this.opts.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      try {
        wfd = fs.openSync(this.opts.path, fs.constants.O_WRONLY | fs.constants.O_NOCTTY);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Gone (nfsd stopped): the directory watch brings it back.
      if (code !== 'ENOENT') this.opts.log.error(`cannot open ${this.opts.path}: ${(e as Error).message}`);
      else this.opts.log.debug(() => `${this.opts.path} is not there yet`);
      return;
    }
    let stream: net.Socket;
    try {
      stream = tty.isatty(fd) ? new tty.ReadStream(fd) : new net.Socket({ fd, readable: true, writable: false });
    } catch (e) {
      this.opts.log.error(`${this.opts.path} is not a pipe: ${(e as Error).message}`);
      fs.closeSync(fd);
      fs.closeSync(wfd);
      return;
    }
    this.drop();
    this.fd = fd;
    this.wfd = wfd;
    this.stream = stream;
    this.lastOpen = Date.now();
    this.opts.log.debug(() => `opened ${this.opts.path}`);
    stream.on('data', (chunk: Buffer) => this.feed(chunk));
    // rpc_pipefs: a read of 0 (nothing queued) looks like end of file to the
    // event loop, and an error means the pipe went away: open it again,
    // backing off if that keeps happening.
    const reopen = (why: string) => {
      if (this.stream !== stream || this.closed) return;
      this.opts.log.debug(() => `cld pipe: ${why}; reopening`);
      this.drop();
      const since = Date.now() - this.lastOpen;
      if (since < 100) setTimeout(() => this.open(), 100 - since);
      else this.open();
    };
    stream.on('end', () => reopen('end of stream'));
    stream.on('error', (e) => reopen(e.message));
  }

  private drop(): void {
    const s = this.stream;
    this.stream = null;
    this.fd = -1;
    if (this.wfd >= 0) fs.closeSync(this.wfd);
    this.wfd = -1;
    this.framer.reset();
    // Destroying the stream closes its descriptor.
    if (s) s.destroy();
  }
}
