#!/usr/bin/env node
// npm run bench:cld: our cld daemon (dist/nfsdcld) against Debian 12's
// nfsdcld, side by side, through the same pty driver the tests use
// (test/lib/cld-driver.ts: a raw pty stands in for <pipefs>/nfsd/cld).
//
//   node bench/cld.mjs [--quick] [--rounds N] [--upcall-rounds N]
//                      [--upcall-creates N] [--upcall-cap S] [--no-upcall]
//                      [--keep] [--out DIR] [--baseline DIST]
//
//   --quick   smoke run (~1 min): 1,000-create storm, 10,000-client GraceStart,
//             2 rounds, a 300-create upcall storm; writes results-cld.quick.md
//   --upcall-cap S  stop starting upcall processes after S s and extrapolate
//                   (75; quick 20): 16 concurrent upcalls are slow
//   --baseline DIST another build's dist/ (its nfsdcld launcher, Node), run as one
//                   more daemon in the same rounds: an interleaved A/B of a change
//
// Measured, for nfsdcld, ours under Node (dist/nfsdcld, the shipped launcher)
// and ours under Bun (bun dist/nfsdcld.js):
//  1. storm: GetVersion + GraceStart on an empty store, then N v2 Creates
//     (distinct "Linux NFSv4.2 host-N" names, half with a princhash) with 16
//     outstanding (a new one sent as each is answered); first send to last reply;
//  2. GraceStart on a store of M clients (first send to its final reply, every
//     -EINPROGRESS downcall counted and its name checked), then GraceDone;
//  2b. the same GraceStart through a bare pty (bench/bare-pty.py reads the
//     master itself, no relay or driver): the daemons' own costs, user and
//     system CPU apart;
//  3. the daemon's memory: VmRSS 2 s after start-up + GetVersion (idle, on the
//     M-client store), VmHWM after that GraceStart;
//  4. the same storm through the upcall (one process per create, 16 at a time,
//     the kernel's bare environment): C nfsdcltrack against dist/nfsdcltrack.
//
// Beside them, a "harness floor": a python daemon (and the same in Node, the
// "Node floor": the runtime's own cost of the writes) that answers from prebuilt
// messages (no store, no fsync), i.e. what the pty, relay and driver cost.
//
// Daemons run in a private mount namespace (isolated(): empty dirs over
// /etc/nfs.conf(.d), /var/lib/nfs, /proc/fs), stores in a dir under
// os.tmpdir() (a real disk here: both daemons fsync). Stores are built once
// (ours through the library, nfsdcld's as a schema-4 main.sqlite with
// python3's sqlite3) and copied for every round. Implementations take turns
// round by round, in an order rotated each round; medians over rounds.
//
// A full run takes about 6 minutes on 2 cores (nfsdcld's 3,000-create storm,
// one fsync'ed transaction per create, is most of it).
//
// Output: a markdown report on stdout and in bench/results-cld.md
// (--quick: results-cld.quick.md).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bunPath, flag, loadBundled, fr, launcherRuntime as runtimeOf, machine as machineInfo, median, opt, pass, ratio, root, say, version } from './common.mjs';

const QUICK = flag('--quick');
const cfg = QUICK
  ? { rounds: 2, storm: 1_000, window: 16, clients: 10_000, upcallRounds: 1, upcallCreates: 300, upcallCapS: 20 }
  : { rounds: 3, storm: 3_000, window: 16, clients: 100_000, upcallRounds: 1, upcallCreates: 1_000, upcallCapS: 75 };
if (opt('--rounds')) cfg.rounds = Number(opt('--rounds'));
if (opt('--upcall-rounds')) cfg.upcallRounds = Number(opt('--upcall-rounds'));
if (opt('--upcall-creates')) cfg.upcallCreates = Number(opt('--upcall-creates'));
if (opt('--upcall-cap')) cfg.upcallCapS = Number(opt('--upcall-cap'));
if (flag('--no-upcall')) cfg.upcallRounds = 0;
const outDir = opt('--out') ?? path.join(root, 'bench');
const suffix = QUICK ? '.quick' : '';
/** Idle time before the idle RSS is read. */
const IDLE_MS = 2_000;
/** Replies that take longer than this fail the call (a 100,000-record GraceStart included). */
const CALL_TIMEOUT_MS = 300_000;

const t0 = Date.now();
const load0 = os.loadavg()[0];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcld-bench-'));

// --- cleanup: every daemon killed, the work dir removed, whatever happens --------------

const openDrivers = new Set();
const children = new Set();
let cleaned = false;
/** Set on a signal: no new process, no new round. */
let stopping = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  stopping = true;
  for (const p of children) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
  await Promise.allSettled([...openDrivers].map((d) => d.close()));
  openDrivers.clear();
  if (!flag('--keep')) fs.rmSync(work, { recursive: true, force: true });
  else say(`kept ${work}`);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

// --- what we run ----------------------------------------------------------------------

// A private copy of dist/: a rebuild during the run must not change what is measured.
for (const f of ['nfsdcld', 'nfsdcld.js', 'nfsdcltrack']) if (!fs.existsSync(path.join(root, 'dist', f))) throw new Error(`dist/${f} is missing: run npm run build`);
const dist = path.join(work, 'dist');
fs.cpSync(path.join(root, 'dist'), dist, { recursive: true, filter: (src) => !path.basename(src).startsWith('.build-') });
const nodeLauncherRuntime = runtimeOf(path.join(dist, 'nfsdcld'));
const upcallRuntime = runtimeOf(path.join(dist, 'nfsdcltrack'));

/** The driver, codec, store library and reference fetch, bundled from their TypeScript. */
async function loadLib() {
  // The driver runs pty-relay.py from beside itself.
  fs.copyFileSync(path.join(root, 'test/lib/pty-relay.py'), path.join(work, 'pty-relay.py'));
  return loadBundled('bench/cld-lib.ts', work, 'cld-lib.cjs');
}

function refVersion(pkgRoot) {
  const r = spawnSync('sh', ['-c', `zcat "${pkgRoot}/usr/share/doc/nfs-kernel-server/changelog.Debian.gz" | head -1`], { encoding: 'utf8' });
  return (r.stdout.match(/\(([^)]+)\)/) ?? [])[1] ?? '?';
}

// Under Bun, on a pty (not on rpc_pipefs), the daemon hangs at its first
// upcall: lib/cld/pipe.ts readWaiting() drains the pipe with fs.readSync,
// which on rpc_pipefs returns 0 when nothing is queued and on a pty opened by
// Node's tty.ReadStream (non-blocking) fails with EAGAIN, but Bun's
// tty.ReadStream leaves the fd blocking (it reads on a worker thread), so the
// main thread blocks in read(2) for ever. The shim makes fs.readSync on the
// cld tty fail with EAGAIN at once, as it does under Node when nothing is
// waiting: messages still come in whole chunks through the stream, so a
// chunk of several upcalls is still handled (and committed) together.
const BUN_PTY_SHIM = `const fs = require('fs'), tty = require('tty');
const cld = new Set();
const openSync = fs.openSync, readSync = fs.readSync;
fs.openSync = function (p, ...rest) {
  const fd = openSync.call(this, p, ...rest);
  if (typeof p === 'string' && p.endsWith('/nfsd/cld')) cld.add(fd);
  return fd;
};
fs.readSync = function (fd, ...rest) {
  if (cld.has(fd) && tty.isatty(fd)) { const e = new Error('EAGAIN (bench pty shim)'); e.code = 'EAGAIN'; throw e; }
  return readSync.call(this, fd, ...rest);
};
`;

const FLOOR_DAEMON = String.raw`# The harness floor: a "daemon" that does no work. It answers at once, from
# messages built before it serves: GetVersion -> 2, GraceStart -> one
# -EINPROGRESS downcall per client of the bench's store (same names and
# princhashes), each one write(), then 0; anything else -> 0. No store, no
# fsync: what the pty, the relay and the driver cost by themselves.
import hashlib, os, struct, sys
args = sys.argv[1:]
pipefs = args[args.index('-p') + 1]
n = int(os.environ.get('CLD_FLOOR_CLIENTS', '0'))
bodies = []
for i in range(n):
    name = b'Linux NFSv4.2 client-%06d.example.org' % i
    ph = hashlib.sha256(name + b'@EXAMPLE.ORG').digest() if i % 2 else b''
    bodies.append(struct.pack('<H', len(name)) + name.ljust(1024, b'\0') + bytes([len(ph)]) + ph.ljust(32, b'\0'))
fd = os.open(os.path.join(pipefs, 'nfsd', 'cld'), os.O_RDWR | os.O_NOCTTY)
def readn(k):
    b = b''
    while len(b) < k:
        c = os.read(fd, k - len(b))
        if c:
            b += c
    return b
while True:
    h = readn(8)
    vers, cmd, _, xid = struct.unpack('<BBhI', h)
    msg = h + readn((1034 if vers == 1 else 1067) - 8)
    if cmd == 5:
        os.write(fd, msg[:2] + b'\0\0' + msg[4:8] + b'\x02' + msg[9:])
    elif cmd == 4:
        hdr = struct.pack('<BBhI', vers, cmd, -115, xid)
        for b in bodies:
            os.write(fd, hdr + b)
        os.write(fd, msg[:2] + b'\0\0' + msg[4:])
    else:
        os.write(fd, msg[:2] + b'\0\0' + msg[4:])
`;

// The same floor in Node: what the runtime itself costs for 100,000 write()s
// from JavaScript (fs.writeSync of prebuilt messages), with no store work.
const FLOOR_DAEMON_JS = String.raw`const fs = require('fs'), path = require('path'), crypto = require('crypto');
const args = process.argv.slice(2);
const fd = fs.openSync(path.join(args[args.indexOf('-p') + 1], 'nfsd', 'cld'), fs.constants.O_RDWR | fs.constants.O_NOCTTY);
const n = Number(process.env.CLD_FLOOR_CLIENTS || 0);
const msgs = [];
for (let i = 0; i < n; i++) {
  const m = Buffer.alloc(1067), name = Buffer.from('Linux NFSv4.2 client-' + String(i).padStart(6, '0') + '.example.org');
  m[0] = 2; m[1] = 4; m.writeInt16LE(-115, 2); m.writeUInt16LE(name.length, 8); name.copy(m, 10);
  if (i % 2) { m[1034] = 32; crypto.createHash('sha256').update(Buffer.concat([name, Buffer.from('@EXAMPLE.ORG')])).digest().copy(m, 1035); }
  msgs.push(m);
}
const readn = (k) => { const b = Buffer.alloc(k); let h = 0; while (h < k) h += fs.readSync(fd, b, h, k - h, null); return b; };
for (;;) {
  const h = readn(8), vers = h[0], cmd = h[1];
  const msg = Buffer.concat([h, readn((vers === 1 ? 1034 : 1067) - 8)]);
  msg.writeInt16LE(0, 2);
  if (cmd === 5) msg[8] = 2;
  if (cmd === 4) for (const m of msgs) { h.copy(m, 4, 4, 8); fs.writeSync(fd, m); }
  fs.writeSync(fd, msg);
}
`;

// --- clients ------------------------------------------------------------------------

const hex = (s) => Buffer.from(s, 'latin1').toString('hex');
const princhash = (s) => createHash('sha256').update(`${s}@EXAMPLE.ORG`).digest();
const stormName = (i) => `Linux NFSv4.2 host-${i}`;
const storeName = (i) => `Linux NFSv4.2 client-${String(i).padStart(6, '0')}.example.org`;
const NOW = Math.floor(Date.now() / 1000);

let xid = 1;
const nextXid = () => (xid = (xid + 1) >>> 0 || 1);

// --- measurements ---------------------------------------------------------------------

const quantile = (xs, q) => {
  if (!xs || xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The daemon's own pid: the driver runs it under unshare and sh, which exec it. */
function daemonPid(store) {
  const r = spawnSync('pgrep', ['-f', '--', `-s ${store}`], { encoding: 'utf8' });
  const pids = r.stdout.trim().split('\n').filter(Boolean).map(Number);
  const pid = pids.find((p) => {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'latin1');
      return (cmd.includes('nfsdcld') || cmd.includes('floor-daemon.')) && !cmd.includes('unshare') && !cmd.startsWith('/bin/sh');
    } catch {
      return false;
    }
  });
  if (!pid) throw new Error(`no daemon found for ${store}`);
  return pid;
}
/** VmRSS/VmHWM in KiB. */
function mem(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) ?? [])[1]);
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}
/** User + system CPU ms of a process so far. */
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const failures = [];
const check = (ok, what) => {
  if (!ok) {
    failures.push(what);
    say(`CHECK FAILED: ${what}`);
  }
  return ok;
};

// --- the run ----------------------------------------------------------------------------

const results = { storm: {}, grace: {}, bare: {}, upcall: {} };
let lib;
let impls;
let iso;

async function openDaemon(impl, store, tag) {
  const pipefs = path.join(work, `pipefs-${tag}`);
  const d = await lib.CldDriver.open(pipefs, store, impl.spec);
  openDrivers.add(d);
  const s = now();
  const v = await d.call(lib.encodeMessage({ vers: 1, cmd: lib.Cmd.GetVersion, xid: nextXid() }), 60_000);
  const startMs = now() - s;
  check(v.final[8] === 2 && lib.decodeHeader(v.final).status === 0, `${impl.key} ${tag}: GetVersion answered version ${v.final[8]}`);
  return { d, startMs };
}
async function closeDaemon(d) {
  await d.close();
  openDrivers.delete(d);
  fs.rmSync(d.pipefs, { recursive: true, force: true });
}
const status = (b) => lib.decodeHeader(b).status;

async function stormRound(impl, r) {
  const store = path.join(work, `storm-${impl.key}-${r}`);
  fs.mkdirSync(store, { mode: 0o700 });
  const { d, startMs } = await openDaemon(impl, store, `storm-${impl.key}-${r}`);
  try {
    // (The floor has no store: its GraceStart would send the big store's clients.)
    const gs = impl.floor ? { final: Buffer.alloc(8), inProgress: [] } : await d.call(lib.encodeMessage({ vers: 2, cmd: lib.Cmd.GraceStart, xid: nextXid() }), CALL_TIMEOUT_MS);
    check(status(gs.final) === 0 && gs.inProgress.length === 0, `${impl.key} storm ${r}: GraceStart on an empty store: status ${status(gs.final)}, ${gs.inProgress.length} records`);
    const msgs = Array.from({ length: cfg.storm }, (_, i) =>
      lib.encodeMessage({ vers: 2, cmd: lib.Cmd.Create, xid: nextXid() }, { name: Buffer.from(stormName(i)), princhash: i % 2 ? princhash(stormName(i)) : null }),
    );
    const pid = daemonPid(store);
    const cpu0 = cpuMs(pid);
    const lat = [];
    let bad = 0;
    let next = 0;
    const lane = async () => {
      while (next < msgs.length) {
        const m = msgs[next++];
        const s = now();
        const res = await d.call(m, CALL_TIMEOUT_MS);
        lat.push(now() - s);
        if (status(res.final) !== 0 || res.inProgress.length) bad++;
      }
    };
    const s = now();
    await Promise.all(Array.from({ length: cfg.window }, lane));
    const ms = now() - s;
    const cpu = cpuMs(pid) - cpu0;
    check(bad === 0, `${impl.key} storm ${r}: ${bad} creates not answered 0`);
    check(d.strays.length === 0, `${impl.key} storm ${r}: ${d.strays.length} stray downcalls`);
    return { ms, startMs, latMedian: median(lat), latP99: quantile(lat, 0.99), cpu, bad };
  } finally {
    await closeDaemon(d);
    fs.rmSync(store, { recursive: true, force: true });
  }
}

async function graceRound(impl, r, expected) {
  const store = path.join(work, `grace-${impl.key}-${r}`);
  fs.cpSync(impl.proto, store, { recursive: true });
  const { d, startMs } = await openDaemon(impl, store, `grace-${impl.key}-${r}`);
  try {
    const pid = daemonPid(store);
    await sleep(IDLE_MS);
    const idle = mem(pid);
    const cpu0 = cpuMs(pid);
    const s = now();
    const gs = await d.call(lib.encodeMessage({ vers: 2, cmd: lib.Cmd.GraceStart, xid: nextXid() }), CALL_TIMEOUT_MS);
    const graceStartMs = now() - s;
    const cpu = cpuMs(pid) - cpu0;
    const after = mem(pid);
    check(status(gs.final) === 0, `${impl.key} grace ${r}: GraceStart status ${status(gs.final)}`);
    // Every client exactly once, with its princhash (cp_len 0 for those without).
    const seen = new Set();
    let wrong = 0;
    for (const m of gs.inProgress) {
      const c = lib.decodeClient(m);
      if (!c.ok) {
        wrong++;
        continue;
      }
      const h = c.client.name.toString('hex');
      const want = expected.get(h);
      if (want === undefined || seen.has(h) || (c.client.princhash?.toString('hex') ?? null) !== want) wrong++;
      seen.add(h);
    }
    check(gs.inProgress.length === expected.size && seen.size === expected.size && wrong === 0, `${impl.key} grace ${r}: GraceStart sent ${gs.inProgress.length} records (${seen.size} distinct, ${wrong} wrong), expected ${expected.size}`);
    gs.inProgress.length = 0; // let the 100 MB of downcalls go before GraceDone
    const s2 = now();
    const gd = await d.call(lib.encodeMessage({ vers: 2, cmd: lib.Cmd.GraceDone, xid: nextXid() }), CALL_TIMEOUT_MS);
    const graceDoneMs = now() - s2;
    check(status(gd.final) === 0, `${impl.key} grace ${r}: GraceDone status ${status(gd.final)}`);
    return { graceStartMs, graceDoneMs, startMs, cpu, idleRss: idle.rss, idleHwm: idle.hwm, hwm: after.hwm, rssAfter: after.rss };
  } finally {
    await closeDaemon(d);
    fs.rmSync(store, { recursive: true, force: true });
  }
}

/**
 * GraceStart through a bare pty (section 2b): bench/bare-pty.py reads the
 * master itself and keeps nothing (no relay, no driver, no check of the
 * records beyond their count; section 2 checks them), so what a pty costs by
 * itself is the floor and the daemons' own costs show: user and system CPU
 * apart.
 */
async function bareRound(impl, r) {
  const store = path.join(work, `bare-${impl.key}-${r}`);
  const pipefs = path.join(work, `pipefs-bare-${impl.key}-${r}`);
  fs.cpSync(impl.proto, store, { recursive: true });
  try {
    const args = [path.join(root, 'bench/bare-pty.py'), pipefs, store, String(impl.spec.padV1To ?? 0), JSON.stringify(impl.spec.cmd), JSON.stringify(impl.spec.env ?? {})];
    const p = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const code = await new Promise((res) => p.once('exit', (c, sig) => res(c ?? sig)));
    children.delete(p);
    const x = code === 0 ? JSON.parse(out.trim().split('\n').pop() ?? '{}') : null;
    check(x !== null && x.status === 0 && x.n === cfg.clients, `${impl.key} bare ${r}: GraceStart through the bare pty: exit ${code}, ${x ? `status ${x.status}, ${x.n} downcalls` : err.slice(-300)}`);
    return x ?? { ms: NaN, user: NaN, sys: NaN, n: 0 };
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
    fs.rmSync(pipefs, { recursive: true, force: true });
  }
}

/**
 * n processes, `callers` at a time, each as soon as a slot frees, none started
 * after capS seconds; per-call latency too.
 */
async function concurrently(n, callers, capS, spawnArgs) {
  let next = 0;
  let bad = 0;
  let done = 0;
  const lat = [];
  const deadline = Date.now() + capS * 1000;
  const worker = async () => {
    while (next < n && !stopping && Date.now() < deadline) {
      const [cmd, args, env] = spawnArgs(next++);
      const s = now();
      const code = await new Promise((resolve) => {
        const p = spawn(cmd, args, { env, stdio: 'ignore' });
        children.add(p);
        p.on('error', () => resolve(-1));
        p.on('exit', (c) => {
          children.delete(p);
          resolve(c);
        });
      });
      lat.push(now() - s);
      if (code !== 0) bad++;
      done++;
    }
  };
  const s = now();
  await Promise.all(Array.from({ length: callers }, worker));
  const ms = now() - s;
  // Cut short: the time for all n, extrapolated linearly.
  return { ms: done < n ? (ms * n) / done : ms, measuredMs: ms, done, capped: done < n, bad, latMedian: median(lat) };
}

async function upcallRound(u, r) {
  const store = path.join(work, `upcall-${u.key}-${r}`);
  fs.mkdirSync(store, { mode: 0o700 });
  try {
    const env = { NFSDCLTRACK_END_GRACE_FILE: path.join(work, 'no-such-dir/v4_end_grace') };
    const init = spawnSync(u.cmd[0], [...u.cmd.slice(1), '-s', store, 'init'], { env, stdio: 'ignore' });
    check(init.status === 0, `${u.key} upcall ${r}: init exited ${init.status ?? init.signal}`);
    const res = await concurrently(cfg.upcallCreates, cfg.window, cfg.upcallCapS, (i) => [u.cmd[0], [...u.cmd.slice(1), '-s', store, 'create', hex(stormName(i))], {}]);
    check(res.bad === 0, `${u.key} upcall ${r}: ${res.bad} creates did not exit 0`);
    return res;
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

function buildC(dir, n) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The schema sqlite_maindb_init_v4() makes (nfs-utils 2.6.2 utils/nfsdcld/sqlite.c);
  // first_time 0, so that nfsdcld imports nothing on its first start.
  const py = `
import sqlite3, sys, hashlib
n = int(sys.argv[2])
db = sqlite3.connect(sys.argv[1])
db.executescript('CREATE TABLE parameters (key TEXT PRIMARY KEY, value TEXT);'
                 'CREATE TABLE grace (current INTEGER , recovery INTEGER);'
                 'INSERT INTO grace VALUES (1, 0);'
                 'CREATE TABLE "rec-0000000000000001" (id BLOB PRIMARY KEY, princhash BLOB);'
                 "INSERT INTO parameters VALUES ('version', '4');"
                 "INSERT INTO parameters VALUES ('first_time', '0');")
def rows():
    for i in range(n):
        name = 'Linux NFSv4.2 client-%06d.example.org' % i
        ph = hashlib.sha256((name + '@EXAMPLE.ORG').encode()).digest() if i % 2 else None
        yield (name.encode(), ph)
db.executemany('INSERT INTO "rec-0000000000000001" VALUES (?, ?)', rows())
db.commit()
db.close()
`;
  const r = spawnSync('python3', ['-c', py, path.join(dir, 'main.sqlite'), String(n)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building main.sqlite failed: ${r.stderr}`);
}

async function buildOurs(dir, n) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const recs = Array.from({ length: n }, (_, i) => ({
    id: hex(storeName(i)),
    time: NOW - 86_400 - (i % 3_600),
    session: false,
    epoch: 1,
    ph: i % 2 ? princhash(storeName(i)).toString('hex') : null,
    older: null,
  })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  await new lib.Store({ dir }).replaceAll(
    () => recs,
    () => ({ current: 1, recovery: 0 }),
  );
}

async function main() {
  lib = await loadLib();
  const fsType = spawnSync('stat', ['-f', '-c', '%T', work], { encoding: 'utf8' }).stdout?.trim();
  if (/tmpfs|ramfs/.test(fsType)) say(`WARNING: ${work} is on ${fsType}, not a disk: fsync costs nothing there`);
  say(`work dir ${work} (${fsType}); ${QUICK ? 'quick' : 'full'} run: ${cfg.rounds} rounds, storm ${cfg.storm}, GraceStart on ${cfg.clients}`);

  iso = path.join(work, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  const oursEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf') };

  let ref = lib.referenceProgram('usr/sbin/nfsdcld');
  if ('why' in ref && fs.existsSync('/tmp/ref/usr/sbin/nfsdcld')) ref = { bin: '/tmp/ref/usr/sbin/nfsdcld' };
  if ('why' in ref) throw new Error(`no reference nfsdcld: ${ref.why}`);
  const refRoot = path.dirname(path.dirname(path.dirname(ref.bin)));
  results.refVersion = refVersion(refRoot);
  const cUpcall = [process.env.NFSDCLTRACK_REF, path.join(refRoot, 'sbin/nfsdcltrack'), '/tmp/ref/sbin/nfsdcltrack'].filter(Boolean).find((p) => fs.existsSync(p));

  impls = [
    { key: 'c', short: 'nfsdcld (C)', label: `Debian's nfsdcld ${results.refVersion}`, spec: { cmd: lib.isolated(iso, [ref.bin]), env: {}, padV1To: 1067 } },
    { key: 'node', short: 'ours (Node)', label: `ours: dist/nfsdcld (${nodeLauncherRuntime})`, spec: { cmd: lib.isolated(iso, [path.join(dist, 'nfsdcld')]), env: oursEnv } },
  ];
  const baseline = opt('--baseline');
  if (baseline) {
    const copy = path.join(work, 'baseline-dist');
    fs.cpSync(path.resolve(baseline), copy, { recursive: true, filter: (src) => !path.basename(src).startsWith('.build-') });
    impls.push({ key: 'base', short: 'baseline (Node)', label: `--baseline ${baseline}: its nfsdcld`, spec: { cmd: lib.isolated(iso, [path.join(copy, 'nfsdcld')]), env: oursEnv } });
  }
  if (bunPath) {
    fs.writeFileSync(path.join(work, 'bun-pty-shim.cjs'), BUN_PTY_SHIM);
    impls.push({
      key: 'bun',
      short: 'ours (Bun)',
      label: `ours: bun dist/nfsdcld.js`,
      spec: { cmd: lib.isolated(iso, [bunPath, '--preload', path.join(work, 'bun-pty-shim.cjs'), path.join(dist, 'nfsdcld.js')]), env: oursEnv },
    });
  }
  else say('WARNING: no Bun binary; the Bun column is left out');
  fs.writeFileSync(path.join(work, 'floor-daemon.py'), FLOOR_DAEMON);
  impls.push({
    key: 'floor',
    floor: true,
    short: 'harness floor',
    label: 'a python "daemon" that answers from prebuilt messages (no store, no fsync)',
    spec: { cmd: ['python3', path.join(work, 'floor-daemon.py')], env: { PATH: process.env.PATH, CLD_FLOOR_CLIENTS: String(cfg.clients) } },
  });
  fs.writeFileSync(path.join(work, 'floor-daemon.js'), FLOOR_DAEMON_JS);
  impls.push({
    key: 'floorjs',
    floor: true,
    short: 'Node floor',
    label: 'the same floor in Node (fs.writeSync of prebuilt messages)',
    spec: { cmd: [process.execPath, path.join(work, 'floor-daemon.js')], env: { PATH: process.env.PATH, CLD_FLOOR_CLIENTS: String(cfg.clients) } },
  });

  // Stores for GraceStart, built once.
  const tb = now();
  const protoOurs = path.join(work, 'proto-ours');
  await buildOurs(protoOurs, cfg.clients);
  const tOurs = now() - tb;
  const tc = now();
  const protoC = path.join(work, 'proto-c');
  buildC(protoC, cfg.clients);
  say(`stores of ${cfg.clients} built (ours ${tOurs.toFixed(0)} ms, main.sqlite ${(now() - tc).toFixed(0)} ms)`);
  for (const impl of impls) impl.proto = impl.key === 'c' ? protoC : protoOurs;
  const expected = new Map();
  for (let i = 0; i < cfg.clients; i++) expected.set(hex(storeName(i)), i % 2 ? princhash(storeName(i)).toString('hex') : null);
  results.storeBytes = {
    ours: fs.readdirSync(protoOurs).reduce((n, f) => n + fs.statSync(path.join(protoOurs, f)).size, 0),
    c: fs.statSync(path.join(protoC, 'main.sqlite')).size,
  };

  for (const impl of impls) {
    results.storm[impl.key] = [];
    results.grace[impl.key] = [];
    results.bare[impl.key] = [];
  }
  for (let r = 0; r < cfg.rounds && !stopping; r++) {
    const order = impls.map((_, i) => impls[(i + r) % impls.length]);
    for (const impl of order) {
      const x = await stormRound(impl, r);
      results.storm[impl.key].push(x);
      say(`round ${r + 1}/${cfg.rounds} storm ${impl.key}: ${x.ms.toFixed(0)} ms (create median ${x.latMedian.toFixed(2)} ms, daemon CPU ${x.cpu.toFixed(0)} ms)`);
    }
    for (const impl of order) {
      const x = await graceRound(impl, r, expected);
      results.grace[impl.key].push(x);
      say(
        `round ${r + 1}/${cfg.rounds} grace ${impl.key}: GraceStart ${x.graceStartMs.toFixed(0)} ms, GraceDone ${x.graceDoneMs.toFixed(1)} ms, ` +
          `idle RSS ${(x.idleRss / 1024).toFixed(1)} MiB, peak ${(x.hwm / 1024).toFixed(1)} MiB`,
      );
    }
    for (const impl of order) {
      const x = await bareRound(impl, r);
      results.bare[impl.key].push(x);
      say(`round ${r + 1}/${cfg.rounds} bare pty ${impl.key}: GraceStart ${f2(x.ms)} ms, daemon user ${f2(x.user)} ms, system ${f2(x.sys)} ms`);
    }
  }

  // The same storm through the upcall: one process per create.
  const ups = [];
  if (cUpcall) ups.push({ key: 'c', short: 'C nfsdcltrack', cmd: [cUpcall] });
  else say('WARNING: no C nfsdcltrack; the upcall storm has no C column');
  ups.push({ key: 'ours', short: `ours: dist/nfsdcltrack (${/bun$/.test(upcallRuntime) ? 'Bun' : 'Node'})`, cmd: [path.join(dist, 'nfsdcltrack')] });
  results.ups = ups;
  for (const u of ups) results.upcall[u.key] = [];
  for (let r = 0; r < cfg.upcallRounds && !stopping; r++) {
    const order = ups.map((_, i) => ups[(i + r) % ups.length]);
    for (const u of order) {
      const x = await upcallRound(u, r);
      results.upcall[u.key].push(x);
      say(
        `upcall round ${r + 1}/${cfg.upcallRounds} ${u.key}: ${x.done} creates in ${x.measuredMs.toFixed(0)} ms${x.capped ? ` (cut at ${cfg.upcallCapS} s; ${cfg.upcallCreates} extrapolated: ${x.ms.toFixed(0)} ms)` : ''} (per call median ${x.latMedian.toFixed(1)} ms)`,
      );
    }
  }
}

// --- the report --------------------------------------------------------------------------

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2) : '–');
const fmt = (n) => n.toLocaleString('en-US');
const col = (part, key, field) => (results[part][key] ?? []).map((x) => x[field]);
const med = (part, key, field) => median(col(part, key, field));
const range = (part, key, field, scale = 1) => {
  const xs = col(part, key, field).map((x) => x / scale);
  return xs.length ? `${f2(Math.min(...xs))}–${f2(Math.max(...xs))}` : '–';
};

function machine() {
  const m = machineInfo(work);
  return (
    `${m.host} (${os.tmpdir()}); ${m.runtimes}; nfs-utils ${results.refVersion ?? '?'}; dist/nfsdcld runs ${nodeLauncherRuntime}; ` +
    `load average ${load0.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end`
  );
}

function report(error) {
  const lines = [];
  const P = (s = '') => lines.push(s);
  const ids = (impls ?? []).map((i) => i.key);
  const floors = new Set((impls ?? []).filter((i) => i.floor).map((i) => i.key));
  const ours = ids.filter((k) => k !== 'c' && !floors.has(k));
  const short = Object.fromEntries((impls ?? []).map((i) => [i.key, i.short]));
  P(`# cld daemon benchmark: ours against nfsdcld${QUICK ? ' (quick run)' : ''}`);
  P();
  P(`${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} — ${machine()}.`);
  P();
  P(
    `Every daemon is driven through the same raw pty (test/lib/cld-driver.ts, a python relay standing in for \`<pipefs>/nfsd/cld\`), ` +
      `in a private mount namespace, with its store on disk. ${cfg.rounds} rounds; in each, every daemon runs each scenario once, ` +
      `the order rotated round by round; medians over rounds (min–max beside). Written by \`node bench/cld.mjs${QUICK ? ' --quick' : ''}\` in ${((Date.now() - t0) / 1000).toFixed(0)} s.`,
  );
  if (ids.includes('floor')) {
    P();
    P(
      'The **harness floor** row is a python "daemon" that does no work: it answers every upcall at once from messages built before it serves (the same clients for GraceStart), one write() each, no store, no fsync; the **Node floor** row is the same in Node (what 100,000 `fs.writeSync` calls from JavaScript cost by themselves). ' +
        'It is what the pty, the relay and the driver cost by themselves on this machine; on the real rpc_pipefs a downcall write is handled by the kernel at once, so time near the floor is the harness, not the daemon.',
    );
  }
  const base = (impls ?? []).find((i) => i.key === 'base');
  if (base) {
    P();
    P(`The **baseline** row is another build, run in the same rounds for an A/B of a change (${base.label}).`);
  }
  if (error) {
    P();
    P(`**The run failed before it finished:** \`${String(error.message ?? error).split('\n')[0]}\`; the tables hold what was measured.`);
  }
  P();
  P('## Targets');
  P();
  P(`| target | ${ours.map((k) => short[k]).join(' | ')} | nfsdcld | ${ours.map((k) => `${short[k]} / nfsdcld`).join(' | ')} | goal | result (${short.node ?? 'ours'}) |`);
  P(`|---|${ours.map(() => '---:').join('|')}|---:|${ours.map(() => '---:').join('|')}|---|---|`);
  const targets = [
    { what: `storm: ${fmt(cfg.storm)} Creates, ${cfg.window} outstanding`, part: 'storm', field: 'ms', unit: 's', scale: 1000, goal: 0.2 },
    { what: `GraceStart on ${fmt(cfg.clients)} clients`, part: 'grace', field: 'graceStartMs', unit: 'ms', scale: 1, goal: 1.0 },
    { what: `GraceDone after it`, part: 'grace', field: 'graceDoneMs', unit: 'ms', scale: 1, goal: 1.0 },
    { what: `GraceStart on ${fmt(cfg.clients)} clients, bare pty (2b)`, part: 'bare', field: 'ms', unit: 'ms', scale: 1, goal: 1.0 },
  ];
  results.verdicts = [];
  for (const t of targets) {
    const c = med(t.part, 'c', t.field);
    const rs = ours.map((k) => ratio(med(t.part, k, t.field), c));
    const node = ratio(med(t.part, 'node', t.field), c);
    const ok = Number.isFinite(node) ? node <= t.goal : undefined;
    results.verdicts.push({ what: t.what, ok, node, bun: ratio(med(t.part, 'bun', t.field), c) });
    P(
      `| ${t.what} | ${ours.map((k) => `${f2(med(t.part, k, t.field) / t.scale)} ${t.unit}`).join(' | ')} | ${f2(c / t.scale)} ${t.unit} | ${rs.map(fr).join(' | ')} | ≤ ${t.goal.toFixed(1)}× nfsdcld | ${pass(ok)} |`,
    );
  }
  P();
  P(`## 1. Storm: ${fmt(cfg.storm)} v2 Creates with ${cfg.window} outstanding, after GetVersion + GraceStart on an empty store`);
  P();
  P('Time from the first send to the last reply; per-create latency is send to reply of each create (median and 99th percentile within a round, then the median over rounds); daemon CPU is user + system time of the daemon during the storm.');
  P();
  P('| daemon | storm (ms) | min–max | creates/s | per create median (ms) | p99 (ms) | daemon CPU (ms) | ratio to nfsdcld |');
  P('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of ids) {
    const ms = med('storm', k, 'ms');
    P(
      `| ${short[k]} | ${f2(ms)} | ${range('storm', k, 'ms')} | ${f2(cfg.storm / (ms / 1000))} | ${f2(med('storm', k, 'latMedian'))} | ${f2(med('storm', k, 'latP99'))} | ${f2(med('storm', k, 'cpu'))} | ${fr(ratio(ms, med('storm', 'c', 'ms')))} |`,
    );
  }
  P();
  P(`## 2. GraceStart on ${fmt(cfg.clients)} clients, then GraceDone`);
  P();
  P(
    `GraceStart: from its send to its final reply, all ${fmt(cfg.clients)} -EINPROGRESS downcalls (each name and princhash checked; half the clients have one) passing through the pty and the driver on the way; daemon CPU is its user + system time during the GraceStart. ` +
      `GraceDone: send to reply, right after. Stores: ours ${fmt(results.storeBytes?.ours ?? NaN)} bytes, main.sqlite ${fmt(results.storeBytes?.c ?? NaN)} bytes, copied fresh for each round.`,
  );
  P();
  P('| daemon | GraceStart (ms) | min–max | daemon CPU (ms) | ratio | GraceDone (ms) | min–max | ratio | start-up to first reply (ms) |');
  P('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of ids) {
    P(
      `| ${short[k]} | ${f2(med('grace', k, 'graceStartMs'))} | ${range('grace', k, 'graceStartMs')} | ${f2(med('grace', k, 'cpu'))} | ${fr(ratio(med('grace', k, 'graceStartMs'), med('grace', 'c', 'graceStartMs')))} | ` +
        `${f2(med('grace', k, 'graceDoneMs'))} | ${range('grace', k, 'graceDoneMs')} | ${fr(ratio(med('grace', k, 'graceDoneMs'), med('grace', 'c', 'graceDoneMs')))} | ${f2(med('grace', k, 'startMs'))} |`,
    );
  }
  P();
  P(`## 2b. The same GraceStart through a bare pty`);
  P();
  P(
    'bench/bare-pty.py reads the pty\'s master itself and keeps nothing: no relay, no driver, the downcalls only counted (section 2 checks them), so the harness costs only what a pty costs and the daemons\' own costs show. ' +
      'Daemon CPU from /proc/PID/stat (every thread; clock ticks), user and system apart: the system time is the pty\'s, about the same for every writer of the same bytes; on rpc_pipefs the kernel handles each downcall in the writer\'s system time instead, with no reader to wait for.',
  );
  P();
  P('| daemon | GraceStart (ms) | min–max | ratio | daemon user CPU (ms) | min–max | daemon system CPU (ms) |');
  P('|---|---:|---:|---:|---:|---:|---:|');
  for (const k of ids) {
    P(`| ${short[k]} | ${f2(med('bare', k, 'ms'))} | ${range('bare', k, 'ms')} | ${fr(ratio(med('bare', k, 'ms'), med('bare', 'c', 'ms')))} | ${f2(med('bare', k, 'user'))} | ${range('bare', k, 'user')} | ${f2(med('bare', k, 'sys'))} |`);
  }
  P();
  P('## 3. Memory (MiB)');
  P();
  P(`Idle: VmRSS ${IDLE_MS / 1000} s after start-up + GetVersion, on the ${fmt(cfg.clients)}-client store. Peak: VmHWM after the GraceStart of ${fmt(cfg.clients)} (the process's high-water mark since its start).`);
  P();
  P('| daemon | idle VmRSS | min–max | peak VmHWM after GraceStart | min–max | VmRSS after GraceStart |');
  P('|---|---:|---:|---:|---:|---:|');
  for (const k of ids) {
    P(
      `| ${short[k]} | ${f2(med('grace', k, 'idleRss') / 1024)} | ${range('grace', k, 'idleRss', 1024)} | ${f2(med('grace', k, 'hwm') / 1024)} | ${range('grace', k, 'hwm', 1024)} | ${f2(med('grace', k, 'rssAfter') / 1024)} |`,
    );
  }
  P();
  if (results.ups?.length && cfg.upcallRounds > 0) {
    P(`## 4. The same storm through the upcall: ${fmt(cfg.upcallCreates)} \`create\` processes, ${cfg.window} at a time`);
    P();
    const scaled = cfg.upcallCreates !== cfg.storm;
    P(
      `Each create is one process spawned with the kernel's bare environment (\`env: {}\`) on a store made by \`init\`; ${cfg.upcallRounds} round${cfg.upcallRounds > 1 ? 's' : ''}, the implementations taking turns. ` +
        (scaled ? `A storm of ${fmt(cfg.upcallCreates)} creates, scaled linearly to the ${fmt(cfg.storm)} of the daemon storm in the "scaled" column (the upcall is slow: it keeps the full run short). ` : '') +
        `No process is started after ${cfg.upcallCapS} s; a storm cut there is extrapolated linearly to all ${fmt(cfg.upcallCreates)} (marked). ` +
        `The last column is the cost per create against ours (Node) through the daemon (section 1): what the daemon saves.`,
    );
    P();
    P(`| program | storm of ${fmt(cfg.upcallCreates)} (ms) | min–max | ${scaled ? `scaled to ${fmt(cfg.storm)} (s) | ` : ''}creates/s | per call median (ms) | ratio to C | per create vs ours (Node) daemon |`);
    P(`|---|---:|---:|${scaled ? '---:|' : ''}---:|---:|---:|---:|`);
    const daemonPerCreate = med('storm', 'node', 'ms') / cfg.storm;
    for (const u of results.ups) {
      const ms = med('upcall', u.key, 'ms');
      const xs = results.upcall[u.key] ?? [];
      const cut = xs.some((x) => x.capped) ? ` (cut at ${cfg.upcallCapS} s after ${xs.map((x) => fmt(x.done)).join(', ')} creates; extrapolated)` : '';
      P(
        `| ${u.short}${cut} | ${f2(ms)} | ${range('upcall', u.key, 'ms')} | ${scaled ? `${f2((ms * cfg.storm) / cfg.upcallCreates / 1000)} | ` : ''}${f2(cfg.upcallCreates / (ms / 1000))} | ${f2(med('upcall', u.key, 'latMedian'))} | ${fr(ratio(ms, med('upcall', 'c', 'ms')))} | ${fr(ratio(ms / cfg.upcallCreates, daemonPerCreate))} |`,
      );
    }
    P();
  }
  P('## Runs');
  P();
  for (const [part, fields] of [
    ['storm', ['ms', 'latMedian', 'cpu']],
    ['grace', ['graceStartMs', 'graceDoneMs', 'idleRss', 'hwm']],
    ['bare', ['ms', 'user', 'sys']],
  ]) {
    for (const k of ids) {
      const xs = results[part][k] ?? [];
      P(`- ${part} ${short[k]}: ${xs.map((x) => `(${fields.map((f) => `${f} ${f2(x[f])}`).join(', ')})`).join(' ')}`);
    }
  }
  for (const u of results.ups ?? []) {
    const xs = results.upcall[u.key] ?? [];
    if (xs.length) P(`- upcall ${u.short}: ${xs.map((x) => `(${fmt(x.done)} creates in ${f2(x.measuredMs)} ms, per call ${f2(x.latMedian)})`).join(' ')}`);
  }
  if (impls?.some((i) => i.key === 'bun')) {
    P();
    P(
      '**Note on the Bun column.** Under Bun, on a pty, our daemon hangs at its first upcall: `CldPipe.readWaiting()` (lib/cld/pipe.ts) drains the pipe with `fs.readSync`, which returns 0 on rpc_pipefs when nothing is queued and fails with EAGAIN on a pty that Node\'s `tty.ReadStream` made non-blocking, but Bun\'s `tty.ReadStream` leaves the descriptor blocking (it reads on a worker thread), so the main thread blocks in read(2) for ever. ' +
        'The bench runs Bun with a preload shim that makes `fs.readSync` on the cld tty fail with EAGAIN at once (as under Node when nothing is waiting). Upcalls still arrive in whole chunks through the stream, so several are still handled together; the synchronous drain is what Bun misses.',
    );
  }
  if (failures.length) {
    P();
    P('## Failed checks');
    P();
    for (const f of failures.slice(0, 50)) P(`- ${f}`);
  }
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, `results-cld${suffix}.md`), md);
  say(`wrote ${path.join(outDir, `results-cld${suffix}.md`)}`);
}

let error = null;
try {
  await main();
} catch (e) {
  error = e;
  say(`ERROR: ${e.stack ?? e}`);
} finally {
  try {
    if (impls) report(error);
  } finally {
    await cleanup();
  }
}
if (error || failures.length) process.exitCode = 1;
