// Differential test of the cld daemon: seeded random upcall sequences, each
// run through a pty (test/lib/cld-driver.ts) against Debian 12's nfsdcld
// (nfs-utils 2.6.2, fetched like test/differential.ts does) and against
// ours (dist/nfsdcld) when it is built. nfsdcld is always checked against
// the model (test/lib/cld-model.ts), so the model is proven on the real
// binary and the test is useful before ours exists; ours is checked against
// nfsdcld's actual replies. Compared: every downcall's byte image; a
// GraceStart's -EINPROGRESS downcalls as a set.
//
// Both daemons run in a private mount namespace with empty dirs over
// /etc/nfs.conf(.d), /var/lib/nfs and /proc/fs, so the machine's nfs.conf,
// nfsdcltrack database and recovery dir can neither steer nor be touched
// by them (nfsdcld imports the last two on a first start).
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createHash } from 'crypto';
import { ClientInfo, Cmd, decodeHeader, EINVAL, EOPNOTSUPP, encodeMessage, encodeReply } from '../lib/cld/codec';
import { CallResult, CldDriver, DaemonSpec, isolated } from './lib/cld-driver';
import { CldModel } from './lib/cld-model';
import { ROOT } from './lib/built';
import { loudSkip, referenceProgram } from './lib/reference';

const SEQUENCES = Number(process.env.NFSDCLD_DIFF_SEQUENCES ?? 24);
const STEPS = Number(process.env.NFSDCLD_DIFF_STEPS ?? 140);
const PARALLEL = Number(process.env.NFSDCLD_DIFF_PARALLEL ?? 2);
const SEED = Number(process.env.NFSDCLTRACK_TEST_SEED ?? 20261201);
const OURS = process.env.NFSDCLD_OURS ?? path.join(ROOT, 'dist', 'nfsdcld');
// The first reply after a start waits for the daemon to open the pty: ours needs a runtime's start-up.
const TIMEOUT_MS = 20_000;

function executable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// --- random sequences ---------------------------------------------------------------

/** Seeded bytes from SHA-256 in counter mode: reproducible from (seed, sequence). */
class Rng {
  private block = Buffer.alloc(0);
  private used = 0;
  private counter = 0;
  constructor(private readonly seed: string) {}
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      if (this.used === this.block.length) {
        this.block = createHash('sha256').update(`${this.seed}/${this.counter++}`).digest();
        this.used = 0;
      }
      out[i] = this.block[this.used++];
    }
    return out;
  }
  /** 0 <= result < n */
  int(n: number): number {
    return Math.floor((this.bytes(4).readUInt32LE(0) / 2 ** 32) * n);
  }
  chance(p: number): boolean {
    return this.int(1_000_000) < p * 1_000_000;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  /** A key of `weights` chosen in proportion to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const keys = Object.keys(weights) as K[];
    let r = this.int(keys.reduce((s, k) => s + weights[k], 0));
    for (const k of keys) if ((r -= weights[k]) < 0) return k;
    return keys[keys.length - 1];
  }
}

type Step = { msgs: Buffer[] } | { restart: 'SIGTERM' | 'SIGKILL' };

// Relative frequencies: a kernel speaking v2 (GetVersion, GraceStart at each nfsd start), and one speaking v0 (no GraceStart).
const V2_MIX = { create: 30, createV1: 4, remove: 14, batch: 10, graceStart: 8, graceDone: 7, check: 6, getVersion: 2, unknown: 1, restart: 2 };
const V0_MIX = { create: 0, createV1: 30, remove: 12, batch: 10, graceStart: 0, graceDone: 9, check: 25, getVersion: 1, unknown: 1, restart: 2 };
type Op = keyof typeof V2_MIX;

function generate(seq: number): { steps: Step[]; messages: number } {
  const r = new Rng(`${SEED}/${seq}`);
  // A small pool, so that creates, removes and checks collide.
  const allNames = [
    Buffer.from(`Linux NFSv4.2 client-${seq}`),
    Buffer.from('Linux NFSv4.0 10.0.0.7/10.0.0.1 tcp'),
    r.bytes(1024),
    Buffer.concat([r.bytes(1000), Buffer.alloc(24)]),
    Buffer.from('a\0b'),
    Buffer.alloc(1),
    Buffer.from(`hash:${r.bytes(16).toString('hex')}\0`),
    r.bytes(1 + r.int(64)),
  ];
  const names = allNames.filter(() => r.chance(0.75));
  if (names.length === 0) names.push(allNames[0]);
  const hashes = [r.bytes(32), r.bytes(32)];
  let xid = r.bytes(4).readUInt32LE(0);
  const nextXid = () => (xid = (xid + 1 + r.int(3)) >>> 0);
  const v0 = r.chance(0.2);
  const mix: Record<Op, number> = v0 ? V0_MIX : V2_MIX;
  const vers = () => (v0 ? 1 : 2);
  const clientMsg = (cmd: number, v: number): Buffer => {
    const c: ClientInfo = { name: r.pick(names), princhash: v === 2 && r.chance(0.7) ? r.pick(hashes) : null };
    return encodeMessage({ vers: v, cmd, xid: nextXid() }, c);
  };
  const one = (op: Op): Buffer => {
    switch (op) {
      case 'create':
        return clientMsg(Cmd.Create, 2);
      case 'createV1':
        return clientMsg(Cmd.Create, 1);
      case 'remove':
        return clientMsg(Cmd.Remove, r.chance(0.8) ? vers() : 3 - vers());
      case 'check':
        return clientMsg(Cmd.Check, vers());
      case 'graceStart':
        return encodeMessage({ vers: vers(), cmd: Cmd.GraceStart, xid: nextXid() });
      case 'graceDone':
        // v0 kernels send the boot time; nfsdcld ignores it.
        return encodeMessage({ vers: vers(), cmd: Cmd.GraceDone, xid: nextXid() }, undefined, v0 ? BigInt(1_700_000_000 + r.int(1e8)) : undefined);
      case 'getVersion':
        return encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: nextXid() });
      default:
        return encodeMessage({ vers: vers(), cmd: 6 + r.int(250), xid: nextXid() });
    }
  };
  const steps: Step[] = [{ msgs: [encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: nextXid() })] }];
  if (!v0) steps.push({ msgs: [one('graceStart')] });
  while (steps.length < STEPS) {
    const op = r.weighted(mix);
    if (op === 'restart') steps.push({ restart: r.chance(0.5) ? 'SIGTERM' : 'SIGKILL' });
    else if (op === 'batch') {
      // Several nfsd threads' upcalls outstanding at once.
      const n = 2 + r.int(7);
      steps.push({ msgs: Array.from({ length: n }, () => one(r.pick<Op>(v0 ? ['createV1', 'createV1', 'remove', 'check'] : ['create', 'create', 'remove', 'createV1', 'check']))) });
    } else steps.push({ msgs: [one(op)] });
  }
  return { steps, messages: steps.reduce((s, x) => s + ('msgs' in x ? x.msgs.length : 0), 0) };
}

// --- running and comparing ----------------------------------------------------------

/** Every step's replies (null for a restart). */
async function run(d: CldDriver, steps: Step[]): Promise<Array<CallResult[] | null>> {
  const out: Array<CallResult[] | null> = [];
  for (const s of steps) {
    if ('restart' in s) {
      await d.stopDaemon(s.restart);
      d.startDaemon();
      out.push(null);
    } else out.push(s.msgs.length === 1 ? [await d.call(s.msgs[0], TIMEOUT_MS)] : await d.calls(s.msgs, TIMEOUT_MS));
  }
  return out;
}

const hexes = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('hex')).sort();

function describe(b: Buffer | undefined): string {
  if (!b) return 'nothing';
  const h = decodeHeader(b);
  return `${b.length} bytes v${h.vers} cmd ${h.cmd} status ${h.status} xid ${h.xid} union ${b.subarray(8, 24).toString('hex')}…`;
}

/** Differences between `got` and `want` (empty when they agree); GraceStart's in-progress downcalls compared as sets. */
function diff(got: CallResult, want: CallResult): string[] {
  const out: string[] = [];
  const g = hexes(got.inProgress);
  const w = hexes(want.inProgress);
  if (g.join() !== w.join()) out.push(`-EINPROGRESS downcalls: got ${g.length} [${got.inProgress.map(describe).join('; ')}], want ${w.length} [${want.inProgress.map(describe).join('; ')}]`);
  if (!got.final.equals(want.final)) out.push(`final reply: got ${describe(got.final)}, want ${describe(want.final)}`);
  return out;
}

function fromModel(downcalls: Buffer[]): CallResult {
  return { inProgress: downcalls.slice(0, -1), final: downcalls[downcalls.length - 1] };
}

/**
 * What ours must answer, from nfsdcld's answer. The final GraceStart reply
 * carries the last record sent (nfsdcld rewrites one buffer per record);
 * which record is last depends on the order, which is free: take ours.
 */
function fromReference(ref: CallResult, ours: CallResult): CallResult {
  if (ref.inProgress.length === 0 || ours.inProgress.length === 0) return ref;
  return { inProgress: ref.inProgress, final: encodeReply(ours.inProgress[ours.inProgress.length - 1], decodeHeader(ref.final).status) };
}

interface Daemons {
  ref: DaemonSpec;
  ours: DaemonSpec | null;
  scratch: string;
}

interface SeqResult {
  messages: number;
  restarts: number;
  /** GraceStart's -EINPROGRESS downcalls nfsdcld sent */
  records: number;
  mismatches: string[];
}

async function runSequence(seq: number, daemons: Daemons): Promise<SeqResult> {
  const { steps, messages } = generate(seq);
  const dir = fs.mkdtempSync(path.join(daemons.scratch, `seq${seq}-`));
  const open = (who: string, spec: DaemonSpec) => CldDriver.open(path.join(dir, who, 'pipefs'), path.join(dir, who, 'store'), spec);
  const drivers = [await open('ref', daemons.ref), ...(daemons.ours ? [await open('ours', daemons.ours)] : [])];
  const mismatches: string[] = [];
  let records = 0;
  const note = (who: string, i: number, msg: Buffer, ds: string[]) => {
    for (const d of ds) mismatches.push(`seq ${seq} step ${i} ${who} (upcall ${describe(msg)}): ${d}`);
  };
  try {
    const [ref, ours] = await Promise.all(drivers.map((d) => run(d, steps)));
    const model = new CldModel();
    steps.forEach((s, i) => {
      if (!('msgs' in s)) return;
      s.msgs.forEach((m, j) => {
        records += ref[i]![j].inProgress.length;
        note('nfsdcld vs model', i, m, diff(ref[i]![j], fromModel(model.apply(m))));
        if (ours) note('ours vs nfsdcld', i, m, diff(ours[i]![j], fromReference(ref[i]![j], ours[i]![j])));
      });
    });
    drivers.forEach((d, k) => {
      if (d.strays.length) mismatches.push(`seq ${seq} ${k ? 'ours' : 'nfsdcld'}: ${d.strays.length} downcalls for no upcall: ${d.strays.map(describe).join('; ')}`);
    });
  } catch (e) {
    mismatches.push(`seq ${seq}: ${(e as Error).message}`);
  } finally {
    await Promise.all(drivers.map((d) => d.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { messages, restarts: steps.filter((s) => 'restart' in s).length, records, mismatches };
}

/** Scratch space on a tmpfs (nfsdcld fsyncs SQLite at each upcall), holding the isolation dirs. */
function scratchDir(): { scratch: string; iso: string } {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const scratch = fs.mkdtempSync(path.join(base, 'nfsdcld-diff-'));
  const iso = path.join(scratch, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  return { scratch, iso };
}

// --- the tests ----------------------------------------------------------------------

const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
const ref = notRoot ? { why: 'not root: nfsdcld will not run without capabilities to drop' } : referenceProgram('usr/sbin/nfsdcld');
const { scratch, iso } = scratchDir();
t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
const oursSpec: DaemonSpec | null = executable(OURS) ? { cmd: isolated(iso, [OURS]), env: { PATH: process.env.PATH, NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf') } } : null;

t.test('nfsdcld agrees with the model, and ours with nfsdcld', async (t) => {
  if ('why' in ref) return loudSkip(t, `cld differential test: ${ref.why}`);
  if (!oursSpec) loudSkip(t, `ours vs nfsdcld: ${OURS} is not built (the nfsdcld vs model part still runs)`);
  const daemons: Daemons = { ref: { cmd: isolated(iso, [ref.bin]), env: {}, padV1To: 1067 }, ours: oursSpec, scratch };
  const started = Date.now();
  const results: SeqResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < SEQUENCES) results.push(await runSequence(next++, daemons));
    }),
  );
  const sum = (k: 'messages' | 'restarts' | 'records') => results.reduce((s, x) => s + x[k], 0);
  const messages = sum('messages');
  const mismatches = results.flatMap((x) => x.mismatches);
  t.comment(`${SEQUENCES} sequences, ${messages} upcalls to each daemon${oursSpec ? ' (nfsdcld and ours)' : ' (nfsdcld only)'}, ${sum('records')} GraceStart records, ${sum('restarts')} daemon restarts, ${Date.now() - started} ms, seed ${SEED}`);
  for (const m of mismatches.slice(0, 20)) t.comment(m);
  t.equal(mismatches.length, 0, 'no mismatches');
  t.ok(messages >= SEQUENCES, 'sequences ran');
});

t.test('ours: malformed upcalls are answered where they can be, and the next one still is', async (t) => {
  if (!oursSpec) return loudSkip(t, `malformed upcalls to ours: ${OURS} is not built`);
  const dir = fs.mkdtempSync(path.join(scratch, 'bad-'));
  const d = await CldDriver.open(path.join(dir, 'pipefs'), path.join(dir, 'store'), oursSpec);
  t.teardown(() => d.close());
  let xid = 1000;
  const good = () => encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: ++xid });
  const answered = async (what: string) => {
    const m = good();
    const r = await d.call(m, TIMEOUT_MS);
    t.same(r.final, encodeReply(m, 0, 2), `${what}: the next upcall is answered`);
  };
  await answered('start');
  const patched = (cmd: number, f: (m: Buffer) => void, vers = 2): Buffer => {
    const m = encodeMessage({ vers, cmd, xid: ++xid }, { name: Buffer.from('client'), princhash: null });
    f(m);
    return m;
  };
  const cases: Array<[string, Buffer, number]> = [];
  for (const cmd of [Cmd.Create, Cmd.Remove, Cmd.Check]) {
    for (const vers of [1, 2]) {
      cases.push([`cmd ${cmd} v${vers} name length 0`, patched(cmd, (m) => m.writeUInt16LE(0, 8), vers), -EINVAL]);
      cases.push([`cmd ${cmd} v${vers} name length 1025`, patched(cmd, (m) => m.writeUInt16LE(1025, 8), vers), -EINVAL]);
    }
  }
  cases.push(['create princhash length 7', patched(Cmd.Create, (m) => (m[1034] = 7)), -EINVAL]);
  cases.push(['unknown cmd 9', patched(9, () => {}), -EOPNOTSUPP]);
  for (const [what, m, status] of cases) {
    const r = await d.call(m, TIMEOUT_MS);
    t.same(r.final, encodeReply(m, status), `${what}: ${status}`);
    await answered(what);
  }
  // A version we do not speak has no reply size: whatever ours does with it, the next upcall must be answered.
  for (const vers of [0, 3, 255]) {
    d.send(patched(Cmd.Create, (m) => (m[0] = vers)));
    await new Promise((res) => setTimeout(res, 200)); // its own read, as on rpc_pipefs
    await answered(`version ${vers}`);
  }
  t.same(d.strays.map(describe), [], 'no downcalls for no upcall');
  t.ok(cases.length > 0);
});
