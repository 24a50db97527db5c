// Drives a cld daemon (Debian's nfsdcld or ours) without a kernel: a raw pty
// (test/lib/pty-relay.py, since Node cannot make one) stands in for
// <pipefs>/nfsd/cld; upcalls are written into its master and the daemon's
// downcalls read back from it, matched to their upcall by xid.
import * as fs from 'fs';
import * as path from 'path';
import { ChildProcess, spawn } from 'child_process';
import { CLD_V1_SIZE, decodeHeader, EINPROGRESS, MessageFramer } from '../../lib/cld/codec';

const RELAY = path.join(__dirname, 'pty-relay.py');

export interface DaemonSpec {
  /** The daemon's argv before `-F -p DIR -s STORE` (a wrapper such as unshare may come first). */
  cmd: string[];
  env?: NodeJS.ProcessEnv;
  /** Pad each 1034-byte v1 upcall with zeros to this size: Debian 12's nfsdcld reads 1067 bytes per message. */
  padV1To?: number;
}

export interface CallResult {
  inProgress: Buffer[];
  final: Buffer;
}

interface Pending {
  inProgress: Buffer[];
  resolve(r: CallResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Waits for a child's exit (at once if it has exited). */
function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((res) => p.once('exit', () => res()));
}

export class CldDriver {
  /** Downcalls whose xid no call was waiting for. */
  readonly strays: Buffer[] = [];
  private readonly framer = new MessageFramer();
  private readonly pending = new Map<number, Pending>();
  private daemon: ChildProcess | null = null;
  private log = '';
  /** Why the daemon is gone when it went unasked; calls fail at once then. */
  private died: string | null = null;

  private constructor(
    private readonly relay: ChildProcess,
    readonly pipefs: string,
    readonly store: string,
    private readonly spec: DaemonSpec,
  ) {
    relay.stdout!.on('data', (chunk: Buffer) => {
      for (const item of this.framer.push(chunk)) {
        if ('msg' in item) this.deliver(item.msg);
        else this.failAll(new Error(`unframeable downcall: ${item.error}`));
      }
    });
  }

  /** A relay making DIR/nfsd/cld, and the daemon started on it. */
  static async open(dir: string, store: string, spec: DaemonSpec): Promise<CldDriver> {
    fs.mkdirSync(path.join(dir, 'nfsd'), { recursive: true });
    const relay = spawn('python3', [RELAY, path.join(dir, 'nfsd', 'cld')], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      relay.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('ready\n')) resolve();
      });
      relay.once('exit', (code) => reject(new Error(`pty relay exited (${code}): ${err}`)));
    });
    const d = new CldDriver(relay, dir, store, spec);
    d.startDaemon();
    return d;
  }

  /** The daemon's stderr so far (for failure messages). */
  get daemonLog(): string {
    return this.log;
  }

  startDaemon(): void {
    if (this.daemon) throw new Error('daemon already running');
    this.died = null;
    const p = spawn(this.spec.cmd[0], [...this.spec.cmd.slice(1), '-F', '-p', this.pipefs, '-s', this.store], {
      env: this.spec.env ?? {},
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.stderr!.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-8192);
    });
    p.once('exit', (code, sig) => {
      if (this.daemon === p) {
        this.daemon = null;
        this.died = `daemon exited unasked (${code ?? sig}): ${this.log.slice(-2000)}`;
        this.failAll(new Error(this.died));
      }
    });
    this.daemon = p;
  }

  /** Stops the daemon (at a quiescent point: nothing outstanding) and waits for it to go. */
  async stopDaemon(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const p = this.daemon;
    if (!p) return;
    this.daemon = null;
    p.kill(signal);
    await exited(p);
  }

  send(buf: Buffer): void {
    this.relay.stdin!.write(buf);
  }

  /** One upcall; resolves with its -EINPROGRESS downcalls and its final reply. */
  call(msg: Buffer, timeoutMs = 10_000): Promise<CallResult> {
    const r = this.expect(msg, timeoutMs);
    this.send(this.padded(msg));
    return r;
  }

  /** Several upcalls outstanding at once (one write); replies matched by xid, in any order. */
  calls(msgs: Buffer[], timeoutMs = 10_000): Promise<CallResult[]> {
    const rs = msgs.map((m) => this.expect(m, timeoutMs));
    this.send(Buffer.concat(msgs.map((m) => this.padded(m))));
    return Promise.all(rs);
  }

  async close(): Promise<void> {
    await this.stopDaemon('SIGKILL');
    this.relay.stdin!.end();
    await exited(this.relay);
    this.failAll(new Error('driver closed'));
  }

  private padded(msg: Buffer): Buffer {
    const to = this.spec.padV1To;
    return to !== undefined && msg.length === CLD_V1_SIZE && to > msg.length ? Buffer.concat([msg, Buffer.alloc(to - msg.length)]) : msg;
  }

  private expect(msg: Buffer, timeoutMs: number): Promise<CallResult> {
    const xid = decodeHeader(msg).xid;
    if (this.pending.has(xid)) throw new Error(`xid ${xid} already outstanding`);
    if (this.died !== null) return Promise.reject(new Error(`xid ${xid}: ${this.died}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(xid);
        reject(new Error(`no reply to xid ${xid} (cmd ${msg[1]}) within ${timeoutMs} ms; daemon log: ${this.log.slice(-2000)}`));
      }, timeoutMs);
      this.pending.set(xid, { inProgress: [], resolve, reject, timer });
    });
  }

  private deliver(msg: Buffer): void {
    const h = decodeHeader(msg);
    const p = this.pending.get(h.xid);
    if (!p) {
      this.strays.push(msg);
      return;
    }
    if (h.status === -EINPROGRESS) {
      p.inProgress.push(msg);
      return;
    }
    clearTimeout(p.timer);
    this.pending.delete(h.xid);
    p.resolve({ inProgress: p.inProgress, final: msg });
  }

  private failAll(err: Error): void {
    for (const [xid, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`xid ${xid}: ${err.message}`));
    }
    this.pending.clear();
  }
}

// $0 = a dir holding `empty/` and `nfs.conf` (empty); then the daemon's argv.
const NS_SCRIPT = [
  'e=$0',
  'for f in /etc/nfs.conf; do [ ! -e $f ] || mount --bind $e/nfs.conf $f || exit 99; done',
  'for d in /etc/nfs.conf.d /var/lib/nfs /proc/fs; do [ ! -d $d ] || mount --bind $e/empty $d || exit 99; done',
  'exec "$@"',
].join('\n');

/**
 * The daemon's argv run in a private mount namespace with empty dirs over
 * /etc/nfs.conf(.d), /var/lib/nfs and /proc/fs, so that the machine's
 * nfs.conf, nfsdcltrack database and recovery dir can neither steer nor be
 * touched by it (nfsdcld imports the last two on a first start).
 */
export function isolated(iso: string, argv: string[]): string[] {
  return ['/usr/bin/unshare', '-m', '--propagation', 'private', '/bin/sh', '-c', NS_SCRIPT, iso, ...argv];
}
