// The cld protocol, message by message: what each upcall does to the store
// (through lib/tracking.ts, the rules the upcall shares) and what the kernel
// is answered. I/O is the caller's: messages come in through handle(), every
// reply goes out through `send` (one write each).
//
// Group commit: Creates and Removes that are waiting together (one nfsd
// thread each) are applied in one transaction, one append and one fdatasync,
// and answered only after it. Everything else is handled alone and in order,
// so a GraceStart's record list is the store as of that GraceStart.
import { EACCES, EINVAL, EINPROGRESS, EOPNOTSUPP, EREMOTEIO, Cmd, CLD_VERSION, ClientDowncalls, decodeClient, decodeHeader, encodeMessage, encodeReply, type ClientInfo } from './codec';
import type { Logger } from '../log';
import { crashPoint } from '../crashpoint';
import type { Epochs } from '../store/format';
import type { Store, Txn } from '../store/store';
import { created, graceEnded, graceStarted, reclaimedUntold, recoveryMembership, removedFromCurrent } from '../tracking';
import type { V40Carry } from './carry';

export interface ServerOptions {
  store: Store;
  log: Logger;
  /** Write one reply to the pipe; throws when the pipe refuses it. */
  send: (reply: Buffer) => void;
  /** Pull messages already waiting in the pipe into handle() (for group commit). */
  readWaiting?: () => void;
  /** Carries the v4.0 clients that reclaimed over GraceDone (carry.ts); without it, GraceDone is nfsdcld's. */
  carry?: V40Carry;
}

const NAMES: Record<number, string> = { 0: 'Create', 1: 'Remove', 2: 'Check', 3: 'GraceDone', 4: 'GraceStart', 5: 'GetVersion' };
const idOf = (c: ClientInfo): string => c.name.toString('hex');
const phOf = (c: ClientInfo): string | null => (c.princhash ? c.princhash.toString('hex') : null);
const isWrite = (cmd: number): boolean => cmd === Cmd.Create || cmd === Cmd.Remove;

/** Upper bound on one group commit, so a flood cannot grow one transaction without end. */
const MAX_BATCH = 256;
/**
 * A compaction a write made due waits until the pipe has been quiet this
 * long: in a storm of creates (a reclaim after a reboot) upcalls come in
 * within a millisecond of the last answer, and folding the journal every few
 * hundred writes would hold them up (the store folds it anyway once it is far
 * past its threshold).
 */
const QUIET_BEFORE_COMPACTION_MS = 20;

export class CldServer {
  private readonly queue: Buffer[] = [];
  private running: Promise<void> | null = null;
  /** Ends the wait for a quiet pipe: an upcall came in. */
  private wake: (() => void) | null = null;
  /** Removes the daemon made itself (a carried client nfsd destroyed): never answered. */
  private readonly own = new WeakSet<Buffer>();

  constructor(private readonly opts: ServerOptions) {}

  /** Queue an upcall (a whole message); it is answered as soon as its turn comes. */
  handle(msg: Buffer): void {
    this.queue.push(msg);
    this.wake?.();
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Remove a client's record in turn with the upcalls, as a Remove from the kernel would (carry.ts). */
  forget(id: string): void {
    const msg = encodeMessage({ vers: CLD_VERSION, cmd: Cmd.Remove, xid: 0 }, { name: Buffer.from(id, 'hex'), princhash: null });
    this.own.add(msg);
    this.handle(msg);
  }

  /** Resolves once every message handed in so far is answered. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    await this.serve();
    // Everything read is answered: now fold the journal, if a write made that
    // due and no upcall comes for a while.
    while (this.opts.store.compactionPending) {
      if (await this.quiet(QUIET_BEFORE_COMPACTION_MS)) await this.opts.store.compactIfDue();
      await this.serve();
    }
  }

  /** True after ms without an upcall; false as soon as one comes in. */
  private quiet(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(true);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve(false);
      };
    });
  }

  private async serve(): Promise<void> {
    while (this.queue.length > 0) {
      // Let the event loop read what the pipe holds, so that writes waiting
      // together share one fdatasync, and signals get their turn.
      await new Promise<void>((r) => setImmediate(r));
      this.opts.readWaiting?.();
      const first = this.queue[0];
      if (!isWrite(decodeHeader(first).cmd)) {
        this.queue.shift();
        await this.one(first);
        continue;
      }
      let n = 1;
      while (n < this.queue.length && n < MAX_BATCH && isWrite(decodeHeader(this.queue[n]).cmd)) n++;
      await this.writes(this.queue.splice(0, n));
    }
  }

  private reply(msg: Buffer, status: number, version?: number): void {
    const h = decodeHeader(msg);
    if (this.own.has(msg)) {
      if (status !== 0) this.opts.log.error(`cannot remove a carried v4.0 client nfsd destroyed: status ${status}`);
      return;
    }
    this.opts.log.debug(() => `${NAMES[h.cmd] ?? `command ${h.cmd}`} xid ${h.xid}: downcall with status ${status}`);
    try {
      this.opts.send(encodeReply(msg, status, version));
    } catch (e) {
      this.opts.log.error(`cannot answer xid ${h.xid} on the cld pipe: ${(e as Error).message}`);
    }
  }

  /** A batch of Creates and Removes: one transaction, answered after its fdatasync. */
  private async writes(msgs: Buffer[]): Promise<void> {
    const good: { msg: Buffer; client: ClientInfo }[] = [];
    for (const msg of msgs) {
      const c = this.client(msg);
      if (c) good.push({ msg, client: c });
    }
    if (good.length === 0) return;
    const { store } = this.opts;
    let status = 0;
    try {
      await store.mutate((tx) => {
        for (const { msg, client } of good) {
          const id = idOf(client);
          const prev = tx.get(id);
          if (!this.own.has(msg)) this.opts.carry?.told(id);
          if (decodeHeader(msg).cmd === Cmd.Create) {
            tx.put(id, created(prev, tx.epochs, { time: store.time(), session: prev?.session ?? false, ph: phOf(client) }));
          } else {
            tx.put(id, removedFromCurrent(prev, tx.epochs));
          }
        }
      });
      await crashPoint('cld-committed');
    } catch (e) {
      this.opts.log.error(`cannot record ${good.length} client change(s): ${(e as Error).message}`);
      status = -EREMOTEIO;
    }
    for (const { msg } of good) this.reply(msg, status);
  }

  /** The client a message names, or null after answering -EINVAL (nothing is stored from it). */
  private client(msg: Buffer): ClientInfo | null {
    const d = decodeClient(msg);
    if (d.ok) return d.client;
    const h = decodeHeader(msg);
    this.opts.log.error(`${NAMES[h.cmd]} xid ${h.xid}: ${d.why}; refused`);
    this.reply(msg, -EINVAL);
    return null;
  }

  private async one(msg: Buffer): Promise<void> {
    const h = decodeHeader(msg);
    switch (h.cmd) {
      case Cmd.GetVersion:
        return this.reply(msg, 0, CLD_VERSION);
      case Cmd.GraceStart:
        return this.graceStart(msg);
      case Cmd.GraceDone:
        return this.graceDone(msg);
      case Cmd.Check:
        return this.check(msg);
      default:
        this.opts.log.warn(`command ${h.cmd} (xid ${h.xid}) is not implemented`);
        return this.reply(msg, -EOPNOTSUPP);
    }
  }

  /** Run fn in a transaction; the status nfsdcld would answer (-EREMOTEIO on failure). */
  private async transact<T>(what: string, fn: (tx: Txn) => T): Promise<{ status: number; value?: T }> {
    try {
      return { status: 0, value: await this.opts.store.mutate(fn) };
    } catch (e) {
      this.opts.log.error(`${what}: ${(e as Error).message}`);
      return { status: -EREMOTEIO };
    }
  }

  /**
   * nfsd is starting: move the epochs, then hand the kernel every client of
   * the recovery epoch, streamed from the store (never all in memory), each
   * as an -EINPROGRESS downcall, and finally the reply.
   */
  private async graceStart(msg: Buffer): Promise<void> {
    const { store, log } = this.opts;
    this.opts.carry?.reset();
    const r = await this.transact('cannot start grace', (tx) => {
      tx.setEpochs(graceStarted(tx.epochs));
      return tx.epochs;
    });
    if (r.status !== 0) return this.reply(msg, r.status);
    await crashPoint('cld-grace-started');
    const ep = r.value!;
    log.debug(() => `grace started: current epoch ${ep.current}, recovery epoch ${ep.recovery}`);
    let status = 0;
    let sent = 0;
    // nfsdcld fills one buffer for every record it sends, so its final reply
    // carries the last record sent: the kernel ignores it, we match it.
    const out = new ClientDowncalls(msg, -EINPROGRESS);
    const view = store.read();
    try {
      // Straight from the snapshot's bytes to the downcall: nothing is built per client.
      store.eachReclaimable(view, ep, (hex, from, to, ph) => {
        if (from === to) return true;
        try {
          this.opts.send(out.set(hex, from, to, ph));
          sent++;
          return true;
        } catch (e) {
          log.error(`cannot send client ${hex.toString('latin1', from, to)} to the kernel: ${(e as Error).message}`);
          status = -EREMOTEIO;
          return false;
        }
      });
    } catch (e) {
      log.error(`cannot read the client store: ${(e as Error).message}`);
      status = -EREMOTEIO;
    } finally {
      view.close();
    }
    log.debug(() => `sent ${sent} client(s) that may reclaim`);
    this.reply(sent > 0 ? out.buf : msg, status);
  }

  /** Outside grace (a kernel that sends no GraceStart), nfsdcld first starts one. */
  private static inGrace(tx: Txn): Epochs {
    if (tx.epochs.recovery === 0) tx.setEpochs(graceStarted(tx.epochs));
    return tx.epochs;
  }

  /**
   * Grace ends: the recovery epoch is forgotten, but first the v4.0 clients
   * nfsd holds reclaimed state for are carried into the current epoch, as
   * their Create would have (carry.ts says why none came, and how they are
   * forgotten).
   */
  private async graceDone(msg: Buffer): Promise<void> {
    const { store, log, carry } = this.opts;
    const held = carry?.held() ?? null;
    const r = await this.transact('cannot end grace', (tx) => {
      const ep = CldServer.inGrace(tx);
      const kept = new Map<string, string>();
      const next = new Map<string, ReturnType<typeof reclaimedUntold>>();
      for (const [id, dir] of held ?? []) {
        const s = reclaimedUntold(tx.get(id), ep, store.time());
        if (s) {
          kept.set(id, dir);
          next.set(id, s);
        }
      }
      // Written down before the commit: a carried record is never left unwatched.
      if (kept.size > 0 && carry!.keep(kept)) for (const [id, s] of next) tx.put(id, s);
      else kept.clear();
      tx.setEpochs(graceEnded(ep));
      return [...kept.keys()];
    });
    if (r.status === 0) log.debug(() => `grace done${r.value!.length ? `; carried the v4.0 client(s) that reclaimed: ${r.value!.join(' ')}` : ''}`);
    this.reply(msg, r.status);
  }

  /** The old (v0) protocol's reclaim check: a client of the recovery epoch is copied into the current one. */
  private async check(msg: Buffer): Promise<void> {
    const client = this.client(msg);
    if (!client) return;
    const { store } = this.opts;
    const r = await this.transact('cannot check a client', (tx) => {
      const ep = CldServer.inGrace(tx);
      const id = idOf(client);
      const prev = tx.get(id);
      if (!recoveryMembership(prev, ep)) return false;
      tx.put(id, created(prev, ep, { time: store.time(), session: prev!.session, ph: null }));
      return true;
    });
    this.reply(msg, r.status !== 0 ? -EACCES : r.value ? 0 : -EACCES);
  }
}
