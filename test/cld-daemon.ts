// Our cld daemon (dist/nfsdcld) as the kernel runs it, through a pty that
// stands in for the pipe (test/lib/cld-driver.ts), then the files on disk:
// group commit, shutdown and restarts, the pipe's re-creation, sharing the
// store with the upcall and the admin commands, what an idle daemon holds,
// a damaged store, and SIGKILL at every crash point of its write path.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { ClientInfo, Cmd, decodeClient, decodeHeader, encodeMessage } from '../lib/cld/codec';
import { CRASH_POINTS } from '../lib/crashpoint';
import { CldDriver, isolated, type DaemonSpec } from './lib/cld-driver';
import { CldModel } from './lib/cld-model';
import { ensureBuilt, ROOT } from './lib/built';

ensureBuilt();
const OURS = path.join(ROOT, 'dist', 'nfsdcld');
const UPCALL = path.join(ROOT, 'dist', 'nfsdcltrack');
const TIMEOUT_MS = 20_000;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcld-daemon-'));
t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
const iso = path.join(scratch, 'iso');
fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
const baseEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf') };

let seq = 0;
function dirs(): { pipefs: string; store: string } {
  const d = path.join(scratch, `case-${++seq}`);
  fs.mkdirSync(path.join(d, 'pipefs'), { recursive: true });
  return { pipefs: path.join(d, 'pipefs'), store: path.join(d, 'store') };
}
function spec(env: Record<string, string> = {}): DaemonSpec {
  return { cmd: isolated(iso, [OURS]), env: { ...baseEnv, ...env } };
}
async function open(env: Record<string, string> = {}, where = dirs()): Promise<CldDriver> {
  return CldDriver.open(where.pipefs, where.store, spec(env));
}

let xid = 1000;
const name = (s: string): ClientInfo => ({ name: Buffer.from(s), princhash: null });
const msg = (cmd: number, client?: ClientInfo) => encodeMessage({ vers: 2, cmd, xid: ++xid }, client);
const create = (s: string, ph: Buffer | null = null) => msg(Cmd.Create, { name: Buffer.from(s), princhash: ph });
const remove = (s: string) => msg(Cmd.Remove, name(s));
const status = (b: Buffer) => decodeHeader(b).status;

async function version(d: CldDriver): Promise<void> {
  const r = await d.call(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: ++xid }), TIMEOUT_MS);
  if (r.final[8] !== 2) throw new Error(`GetVersion answered ${r.final[8]}`);
}
/** The names a GraceStart hands the kernel, sorted. */
async function graceStart(d: CldDriver): Promise<string[]> {
  const r = await d.call(msg(Cmd.GraceStart), TIMEOUT_MS);
  if (status(r.final) !== 0) throw new Error(`GraceStart failed: ${status(r.final)}`);
  return r.inProgress.map((m) => {
    const c = decodeClient(m);
    if (!c.ok) throw new Error(c.why);
    return c.client.name.toString() + (c.client.princhash ? `+${c.client.princhash.toString('hex').slice(0, 8)}` : '');
  }).sort();
}
async function graceDone(d: CldDriver): Promise<void> {
  const r = await d.call(msg(Cmd.GraceDone), TIMEOUT_MS);
  if (status(r.final) !== 0) throw new Error(`GraceDone failed: ${status(r.final)}`);
}
const crashTrace = (log: string): string[] => [...log.matchAll(/^crashpoint (\S+)$/gm)].map((m) => m[1]);

t.test('creates arriving together share one fdatasync, and are answered after it', async (t) => {
  const d = await open({ NFSDCLTRACK_CRASH_AT: 'trace' });
  try {
    await version(d);
    await graceStart(d);
    const before = crashTrace(d.daemonLog).length;
    const rs = await d.calls(Array.from({ length: 16 }, (_, i) => create(`group-${i}`)), TIMEOUT_MS);
    t.same(rs.map((r) => status(r.final)), Array(16).fill(0), 'all 16 answered 0');
    const syncs = crashTrace(d.daemonLog).slice(before).filter((p) => p === 'journal-fsynced').length;
    t.ok(syncs >= 1 && syncs <= 2, `16 creates, ${syncs} fdatasync(s)`);
    const journal = fs.readFileSync(path.join(d.store, 'clients.journal'), 'latin1');
    t.equal(journal.split('\n').filter((l) => / set /.test(l)).length, 16, '16 set entries in the journal');
    await graceDone(d);
    t.same(await graceStart(d), Array.from({ length: 16 }, (_, i) => `group-${i}`).sort(), 'all 16 handed back at the next grace start');
  } finally {
    await d.close();
  }
});

t.test('compaction waits until every upcall read is answered, then folds the journal', async (t) => {
  const d = await open({ NFSDCLTRACK_COMPACT_BYTES: '2048', NFSDCLTRACK_CRASH_AT: 'trace' });
  try {
    await version(d);
    await graceStart(d);
    for (let round = 0; round < 4; round++) {
      const rs = await d.calls(Array.from({ length: 8 }, (_, i) => create(`fold-${round}-${i}`)), TIMEOUT_MS);
      t.same(rs.map((r) => status(r.final)), Array(8).fill(0));
    }
    await graceDone(d);
    // It waits for the pipe to be quiet for a moment (server.ts).
    for (let i = 0; i < 100 && !crashTrace(d.daemonLog).includes('compaction-started'); i++) await new Promise((r) => setTimeout(r, 50));
    const trace = crashTrace(d.daemonLog);
    t.ok(trace.includes('compaction-started'), 'the journal was folded');
    // Each compaction starts only after the fsync and release of the write that made it due.
    const at = trace.indexOf('compaction-started');
    t.equal(trace[at - 1], 'lock-taken', 'in a transaction of its own');
    t.equal(trace.slice(0, at - 1).filter((p) => p.startsWith('lock-')).pop(), 'lock-released', 'after the one before it was released');
    t.ok(trace.slice(0, at).includes('cld-committed'), 'after the write that made it due was committed and answered');
    const snap = fs.readFileSync(path.join(d.store, 'clients.snap'), 'latin1');
    t.notMatch(snap, /gen=0000000000000001 /, 'a new snapshot generation');
    t.equal((await graceStart(d)).length, 32, 'all 32 clients handed back');
  } finally {
    await d.close();
  }
});

t.test('SIGTERM: what was read is answered; SIGKILL: a restart serves the same store', async (t) => {
  const d = await open();
  try {
    await version(d);
    await graceStart(d);
    t.equal(status((await d.call(create('kept', Buffer.alloc(32, 7)), TIMEOUT_MS)).final), 0);
    // Eight creates, then SIGTERM at once: each is answered by this daemon or, unread, by the next one.
    const pending = d.calls(Array.from({ length: 8 }, (_, i) => create(`term-${i}`)), 2 * TIMEOUT_MS);
    await new Promise((r) => setTimeout(r, 20));
    await d.stopDaemon('SIGTERM');
    d.startDaemon();
    const rs = await pending;
    t.same(rs.map((r) => status(r.final)), Array(8).fill(0), 'all eight answered, none twice');
    await d.stopDaemon('SIGKILL');
    d.startDaemon();
    await version(d);
    await graceDone(d);
    const names = await graceStart(d);
    t.same(names, ['kept+07070707', ...Array.from({ length: 8 }, (_, i) => `term-${i}`)].sort(), 'every acknowledged create, with its princhash');
    t.same(d.strays, [], 'no reply without an upcall');
  } finally {
    await d.close();
  }
});

t.test('the pipe removed and made again (nfsd restarted): reopened, served', async (t) => {
  const d = await open({ NFSDCLTRACK_CRASH_AT: '' });
  const pipe = path.join(d.pipefs, 'nfsd', 'cld');
  try {
    await version(d);
    const target = fs.readlinkSync(pipe);
    for (let i = 0; i < 3; i++) {
      fs.unlinkSync(pipe);
      await new Promise((r) => setTimeout(r, 50));
      fs.symlinkSync(target, pipe);
      await new Promise((r) => setTimeout(r, 100));
      t.equal(status((await d.call(create(`after-${i}`), TIMEOUT_MS)).final), 0, `served after re-creation ${i + 1}`);
    }
  } finally {
    await d.close();
  }
});

function procInfo(pid: number): { fds: string[]; cwd: string; ticks: number } {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).map((f) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${f}`);
    } catch {
      return '';
    }
  });
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { fds, cwd: fs.readlinkSync(`/proc/${pid}/cwd`), ticks: Number(f[11]) + Number(f[12]) };
}

/** The daemon's own pid: the driver runs it under unshare and sh, which exec it. */
function daemonPid(store: string): number {
  const r = spawnSync('pgrep', ['-f', '--', `-s ${store}`], { encoding: 'utf8' });
  const pids = r.stdout.trim().split('\n').filter(Boolean).map(Number);
  return pids.find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'latin1').includes('nfsdcld')) ?? -1;
}

t.test('idle, the daemon holds nothing of the storage dir, sits outside it, and uses no CPU', async (t) => {
  const d = await open();
  try {
    await version(d);
    await graceStart(d);
    await d.calls([create('idle-a'), create('idle-b'), remove('idle-a')], TIMEOUT_MS);
    await graceDone(d);
    const pid = daemonPid(d.store);
    t.ok(pid > 0, 'found the daemon');
    const a = procInfo(pid);
    t.same(a.fds.filter((f) => f.startsWith(d.store)), [], 'no open file in the storage dir');
    t.equal(a.cwd, '/', 'working directory /');
    await new Promise((r) => setTimeout(r, 3000));
    const b = procInfo(pid);
    t.ok(b.ticks - a.ticks <= 2, `${b.ticks - a.ticks} clock ticks of CPU in 3 s idle`);
  } finally {
    await d.close();
  }
});

t.test('one store for the daemon, the upcall and the admin commands, at the same time', async (t) => {
  const d = await open();
  const upcall = (...args: string[]) => spawnSync(UPCALL, ['-s', d.store, ...args], { env: {}, encoding: 'utf8' }).status;
  try {
    await version(d);
    await graceStart(d);
    t.equal(status((await d.call(create('by-daemon'), TIMEOUT_MS)).final), 0);
    t.equal(upcall('create', Buffer.from('by-upcall').toString('hex')), 0, 'the upcall writes while the daemon runs');
    t.equal(upcall('check', Buffer.from('by-daemon').toString('hex')), 0, 'the upcall grants what the daemon recorded');
    const list = spawnSync(UPCALL, ['-s', d.store, 'list'], { env: {}, encoding: 'utf8' });
    t.equal(list.status, 0, 'list runs beside the daemon');
    t.match(list.stdout, /by-daemon/);
    t.match(list.stdout, /by-upcall/);
    const verify = spawnSync(UPCALL, ['-s', d.store, 'verify'], { env: {}, encoding: 'utf8' });
    t.equal(verify.status, 0, `verify: sound (${verify.stdout.trim().split('\n').pop()})`);
    await graceDone(d);
    t.same(await graceStart(d), ['by-daemon', 'by-upcall'], 'the next grace start hands back both');
  } finally {
    await d.close();
  }
});

t.test('a damaged store: only what it proves is handed to the kernel, and the damage is logged', async (t) => {
  const where = dirs();
  let d = await open({}, where);
  try {
    await version(d);
    await graceStart(d);
    await d.calls([create('early-1'), create('early-2')], TIMEOUT_MS);
    await d.stopDaemon('SIGTERM');
    const journal = path.join(where.store, 'clients.journal');
    const lines = fs.readFileSync(journal, 'latin1').split('\n');
    const i = lines.findIndex((l) => l.includes(Buffer.from('early-2').toString('hex')));
    lines[i] = lines[i].replace(/ set /, ' sEt ');
    fs.writeFileSync(journal, lines.join('\n'), 'latin1');
    d.startDaemon();
    await version(d);
    t.equal(status((await d.call(create('late'), TIMEOUT_MS)).final), 0, 'a create after the damage is recorded');
    await graceDone(d);
    t.same(await graceStart(d), ['late'], 'unproven clients are not handed out; the proven one is');
    t.match(d.daemonLog, /damaged/, 'the damage is logged');
  } finally {
    await d.close();
  }
  d = null as unknown as CldDriver;
});

// --- crash matrix ---------------------------------------------------------------

interface Case {
  name: string;
  /** Upcalls before the one under test, all answered. */
  setup: Buffer[];
  /** The upcalls under test, sent together. */
  op: () => Buffer[];
}
const ph = Buffer.alloc(32, 0x5a);
const CASES: Case[] = [
  { name: 'create', setup: [], op: () => [create('c-new', ph)] },
  { name: 'remove', setup: [], op: () => [remove('c-a')] },
  { name: 'grace start', setup: [], op: () => [msg(Cmd.GraceStart)] },
  { name: 'grace done', setup: [], op: () => [msg(Cmd.GraceDone)] },
  { name: 'group commit', setup: [], op: () => [create('g-1'), create('g-2'), remove('c-b'), create('g-3', ph)] },
];
/** Before every case: clients a and b through a grace period, c created in the new one. */
const PROLOGUE = () => [msg(Cmd.GraceStart), create('c-a'), create('c-b', ph), msg(Cmd.GraceDone), msg(Cmd.GraceStart), create('c-a'), create('c-c')];

const key = (c: ClientInfo) => c.name.toString() + (c.princhash ? `+${c.princhash.toString('hex').slice(0, 8)}` : '');
/**
 * After a restart: grace ends, the next grace start hands out the current
 * epoch's clients (so creates and removes show), and a second one (nfsd
 * restarted during grace) the same again.
 */
const CHECK = () => [msg(Cmd.GraceDone), msg(Cmd.GraceStart), msg(Cmd.GraceStart)];
/** What those grace starts hand out after these upcalls, by the model of nfsdcld. */
function expected(msgs: Buffer[]): string[][] {
  const m = new CldModel();
  for (const x of msgs) m.apply(x);
  const sets: string[][] = [];
  for (const x of CHECK()) {
    const out = m.apply(x);
    if (decodeHeader(x).cmd !== Cmd.GraceStart) continue;
    sets.push(out.slice(0, -1).map((d) => {
      const c = decodeClient(d);
      if (!c.ok) throw new Error(c.why);
      return key(c.client);
    }).sort());
  }
  return sets;
}

/** Run the prologue on a new store, then a daemon with `env` on it, for fn. */
async function afterPrologue<T>(env: Record<string, string>, fn: (d: CldDriver, where: { pipefs: string; store: string }, prologue: Buffer[]) => Promise<T>): Promise<T> {
  const where = dirs();
  const prologue = PROLOGUE();
  const first = await open({}, where);
  try {
    await version(first);
    for (const m of prologue) await first.call(m, TIMEOUT_MS);
  } finally {
    await first.close();
  }
  const d = await CldDriver.open(path.join(where.pipefs, '..', 'pipefs2'), where.store, spec(env));
  try {
    await version(d);
    return await fn(d, where, prologue);
  } finally {
    await d.close();
  }
}

t.test('SIGKILL at every crash point of the write path: nothing acknowledged is lost, nothing unrecorded is handed out', async (t) => {
  let kills = 0;
  for (const c of CASES) {
    // Which points this case passes, from a traced run.
    const points = await afterPrologue({ NFSDCLTRACK_CRASH_AT: 'trace' }, async (d) => {
      const before = crashTrace(d.daemonLog).length;
      await d.calls(c.op(), TIMEOUT_MS);
      return [...new Set(crashTrace(d.daemonLog).slice(before))].filter((p) => (CRASH_POINTS as readonly string[]).includes(p));
    });
    t.ok(points.length >= 3, `${c.name} passes ${points.join(', ')}`);
    for (const point of points) {
      await afterPrologue({ NFSDCLTRACK_CRASH_AT: point }, async (armed, where, prologue) => {
        const op = c.op();
        const answered = await armed.calls(op, 5000).then(
          () => true,
          () => false,
        );
        await armed.stopDaemon('SIGKILL');
        if (!answered) kills++;
        const d = await open({}, where);
        try {
          await version(d);
          await graceDone(d);
          const got = [await graceStart(d), await graceStart(d)];
          // Acknowledged: only the state after the op. Killed first: the
          // state after some prefix of its upcalls, in order (a group
          // commit's torn append keeps its complete lines: nfsdcld, one
          // upcall at a time, can stop after any of them too).
          const ok = op.map((_, i) => expected([...prologue, ...op.slice(0, i)])).concat([expected([...prologue, ...op])]).map((e) => JSON.stringify(e));
          const allowed = answered ? ok.slice(-1) : ok;
          t.ok(allowed.includes(JSON.stringify(got)), `${c.name}, killed at ${point}${answered ? ' (answered)' : ''}: the next grace starts hand out ${JSON.stringify(got)}`);
        } finally {
          await d.close();
        }
      });
    }
  }
  t.ok(kills >= 10, `${kills} daemons killed mid-upcall`);
});
