#!/usr/bin/env node
// npm run bench: ours against nfs-utils' C nfsdcltrack, side by side.
//
//   node bench/run.mjs [--quick] [--runs N] [--storm-all] [--storm-cap S]
//                      [--compact-bytes N] [--dist DIR] [--keep] [--out DIR]
//                      [--long-ids-only]
//
//   --quick          smoke run (~40 s): 10 and 100,000 clients, 7 runs, a
//                    1,000-check storm; writes results.quick.md/latency.quick.svg
//   --storm-all      also storm ours under the second runtime
//   --storm-cap S    stop a storm after S seconds and extrapolate (150; quick 30)
//   --compact-bytes  NFSDCLTRACK_COMPACT_BYTES for ours
//   --dist DIR       measure another build of dist/ (a prototype)
//   --long-ids-only  only the creates on 100,000 clients with 1 KB ids (~45 s;
//                    quick: 20,000), printed: the compaction threshold's cost
//
// Stores of 10 .. 100,000 clients are written through the library (one
// snapshot write, not 100,000 upcalls); the reference gets the same clients in
// a main.sqlite written with python3's sqlite3. Every timed call is one
// process, spawned with the kernel's bare environment (no PATH), and the
// implementations take turns call by call (interleaved), so that a noisy
// neighbour hurts all of them alike. Medians throughout. The reclaim storm is
// followed by its floors: as many processes from as many callers, each only
// starting (`bun -e 0`, `bun -e "require('fs')"`, ours with -h).
//
// The reference binary: $NFSDCLTRACK_REF, else /tmp/ref/sbin/nfsdcltrack,
// else `apt-get download nfs-kernel-server` + `dpkg -x` into the work dir.
// Without it, the C columns are left empty.
//
// Output: a markdown report on stdout and in bench/results.md, and the chart
// bench/latency.svg (with --quick: bench/results.quick.md, latency.quick.svg).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderChart } from './chart.mjs';
import { bunPath, flag, loadBundled, fr, launcherRuntime as runtimeOf, machine as machineInfo, median, opt, pass, ratio, root, say, version } from './common.mjs';

const QUICK = flag('--quick');
const cfg = QUICK
  ? { sizes: [10, 100_000], runs: 7, gracedoneRuns: 3, rssRuns: 1, storm: { clients: 1_000, checks: 1_000, callers: 8 } }
  : { sizes: [10, 1_000, 10_000, 100_000], runs: 31, gracedoneRuns: 7, rssRuns: 3, storm: { clients: 10_000, checks: 10_000, callers: 8 } };
if (opt('--runs')) cfg.runs = Number(opt('--runs'));
/** Longest a storm may run before the rest is extrapolated (each implementation). */
const STORM_CAP_S = Number(opt('--storm-cap') ?? (QUICK ? 30 : 150));
/** NFSDCLTRACK_COMPACT_BYTES for ours (journal size that triggers compaction); default: the program's own. */
const COMPACT_BYTES = opt('--compact-bytes');
const BIG = cfg.sizes[cfg.sizes.length - 1];
const SMALL = cfg.sizes[0];
const outDir = opt('--out') ?? path.join(root, 'bench');
const suffix = QUICK ? '.quick' : '';

const t0 = Date.now();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-bench-'));

// --- what we run --------------------------------------------------------------

// A private copy of dist/: a rebuild during the run (tests, a colleague) must
// not change what is measured. Relative requires keep working in the copy.
const srcDist = opt('--dist') ?? path.join(root, 'dist'); // --dist: measure another build (a prototype)
for (const f of ['nfsdcltrack', 'cli.js']) if (!fs.existsSync(path.join(srcDist, f))) throw new Error(`dist/${f} is missing: run npm run build`);
const dist = path.join(work, 'dist');
fs.cpSync(srcDist, dist, { recursive: true });
const launcher = path.join(dist, 'nfsdcltrack');
const cliJs = path.join(dist, 'cli.js');
const nodePath = process.execPath;
// The last word of its #! line: the launcher may go through env -S.
const launcherRuntime = runtimeOf(launcher);
const launcherIsBun = /\bbun$/.test(launcherRuntime);

function findReference() {
  const candidates = [process.env.NFSDCLTRACK_REF, '/tmp/ref/sbin/nfsdcltrack'].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return { bin: c, version: debVersion(path.dirname(path.dirname(c))) };
  const dl = path.join(work, 'ref-download');
  fs.mkdirSync(dl);
  say('fetching the reference: apt-get download nfs-kernel-server');
  let r = spawnSync('apt-get', ['download', 'nfs-kernel-server'], { cwd: dl, encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    r = spawnSync('apt-get', ['download', 'nfs-kernel-server'], { cwd: dl, encoding: 'utf8' });
  }
  const deb = fs.readdirSync(dl).find((f) => f.endsWith('.deb'));
  if (!deb) return null;
  const into = path.join(work, 'ref');
  if (spawnSync('dpkg', ['-x', path.join(dl, deb), into]).status !== 0) return null;
  const bin = path.join(into, 'sbin/nfsdcltrack');
  const v = spawnSync('dpkg-deb', ['-f', path.join(dl, deb), 'Version'], { encoding: 'utf8' }).stdout?.trim();
  return fs.existsSync(bin) ? { bin, version: v || '?' } : null;
}
function debVersion(refRoot) {
  // /tmp/ref made by hand: the version is in the .deb beside it, if kept.
  const dir = path.dirname(refRoot);
  const deb = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => /^nfs-kernel-server_.*\.deb$/.test(f)) : undefined;
  if (!deb) return '?';
  return spawnSync('dpkg-deb', ['-f', path.join(dir, deb), 'Version'], { encoding: 'utf8' }).stdout?.trim() || '?';
}

const ref = findReference();
if (!ref) say('WARNING: no reference binary; C columns will be empty');

/** The implementations, in the order they take turns. */
const impls = [];
if (ref) impls.push({ key: 'c', label: `C nfsdcltrack ${ref.version}`, short: 'C', cmd: [ref.bin], kind: 'c' });
impls.push({ key: 'ours', label: `ours: dist/nfsdcltrack (${launcherIsBun ? 'Bun' : 'Node'})`, short: `ours (${launcherIsBun ? 'Bun' : 'Node'})`, cmd: [launcher], kind: 'ours' });
if (launcherIsBun) impls.push({ key: 'node', label: 'ours under Node (node dist/cli.js)', short: 'ours (Node)', cmd: [nodePath, cliJs], kind: 'ours' });
else if (bunPath) impls.push({ key: 'bun', label: 'ours under Bun (bun dist/cli.js)', short: 'ours (Bun)', cmd: [bunPath, cliJs], kind: 'ours' });
// --also DIR[=LABEL]: a prototype build (its dist/), measured alongside as a fourth column.
const also = opt('--also');
if (also) {
  const [dir, label = 'prototype'] = also.split('=');
  const alsoDist = path.join(work, 'dist-also');
  fs.cpSync(dir, alsoDist, { recursive: true });
  impls.push({ key: 'proto', label: `ours, ${label} (${path.join(dir, 'nfsdcltrack')})`, short: `ours ${label}`, cmd: [path.join(alsoDist, 'nfsdcltrack')], kind: 'ours' });
}
const OURS = 'ours';

// --- the library, for building stores -----------------------------------------

async function loadStoreLib() {
  return loadBundled('lib/store/store.ts', work, 'store-lib.cjs');
}

// --- clients ------------------------------------------------------------------

const hex = (s) => Buffer.from(s, 'latin1').toString('hex');
const NOW = Math.floor(Date.now() / 1000);
/** Client i: two in three are NFSv4.1+ (sessions), the rest NFSv4.0; all last seen before "boot". */
function client(i) {
  const session = i % 3 !== 0;
  const name = session
    ? `Linux NFSv4.2 client-${String(i).padStart(6, '0')}.example.org`
    : `Linux NFSv4.0 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/192.0.2.1 tcp`;
  return { id: hex(name), time: NOW - 86_400 - (i % 3_600), session };
}
const clients = (n) => Array.from({ length: n }, (_, i) => client(i));
const freshId = (tag, r) => hex(`Linux NFSv4.2 bench-${tag}-${process.pid}-${String(r).padStart(4, '0')}.example.org`);

async function buildOurs(lib, dir, list) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sorted = [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  await new lib.Store({ dir }).replaceAll(() => sorted);
}

function buildC(dir, list) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tsv = path.join(work, 'clients.tsv');
  fs.writeFileSync(tsv, list.map((c) => `${c.id}\t${c.time}\t${c.session ? 1 : 0}\n`).join(''));
  const py = `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("CREATE TABLE parameters (key TEXT PRIMARY KEY, value TEXT);"
                 "INSERT INTO parameters VALUES('version','2');"
                 "CREATE TABLE clients (id BLOB PRIMARY KEY, time INTEGER, has_session INTEGER);")
with open(sys.argv[2]) as f:
    rows = [(bytes.fromhex(h), int(t), int(s)) for h, t, s in (l.split('\\t') for l in f)]
db.executemany("INSERT INTO clients VALUES (?, ?, ?)", rows)
db.commit()
db.close()
`;
  const r = spawnSync('python3', ['-c', py, path.join(dir, 'main.sqlite'), tsv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building main.sqlite failed: ${r.stderr}`);
}

function copyDir(from, to) {
  fs.cpSync(from, to, { recursive: true });
}

// --- timing -------------------------------------------------------------------

/** The kernel's environment: nothing but what it passes (no PATH, no HOME). */
function kernelEnv(extra) {
  // (/etc/nfs.conf is read as usual, by both programs; v4_end_grace is kept
  // out of reach of ours, and C finds none outside a real NFS server.)
  return { NFSDCLTRACK_END_GRACE_FILE: path.join(work, 'no-such-dir/v4_end_grace'), ...extra };
}

function envFor(impl, extra) {
  const env = kernelEnv(extra);
  if (impl.kind === 'ours' && COMPACT_BYTES) env.NFSDCLTRACK_COMPACT_BYTES = COMPACT_BYTES;
  return env;
}

function timeOnce(cmd, args, env) {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: r.status, signal: r.signal };
}

const failures = [];
function expectStatus(what, r, want = 0) {
  if (r.status !== want) failures.push(`${what}: exit ${r.status ?? r.signal}, expected ${want}`);
}

/** The operations timed at every store size; `r` is the run number. */
function ops(size, list) {
  const v40 = list.filter((c) => !c.session);
  const v41 = list.filter((c) => c.session);
  return [
    { key: 'check', label: 'check (v4.1, read-only)', args: (r) => ['check', v41[(r * 7919) % v41.length].id], env: { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } },
    // v4.0 clients are taken round-robin so that a record's time changes
    // each call: same-second repeats would be no-ops for us (not for C).
    { key: 'check40', label: 'check (v4.0, updates time)', args: (r) => ['check', v40[r % v40.length].id], env: {} },
    { key: 'create', label: 'create (new v4.0 client)', args: (r) => ['create', freshId(`c${size}`, r)], env: {} },
    { key: 'remove', label: 'remove (the client just created)', args: (r) => ['remove', freshId(`c${size}`, r)], env: {} },
    {
      key: 'create41g',
      label: 'create (v4.1, GRACE_START set)',
      args: (r) => ['create', freshId(`g${size}`, r)],
      env: { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', NFSDCLTRACK_GRACE_START: String(NOW) },
    },
    { key: 'init', label: 'init (GRACE_START set)', args: () => ['init'], env: { NFSDCLTRACK_GRACE_START: String(NOW) } },
  ];
}

// --- the run --------------------------------------------------------------------

const results = { latency: {}, floors: {}, gracedone: {}, storm: {}, rss: {}, size: {}, journal: {}, longIds: null };

async function main() {
  say(`work dir ${work}; ${QUICK ? 'quick' : 'full'} run: sizes ${cfg.sizes.join(', ')}, ${cfg.runs} runs each`);
  const lib = await loadStoreLib();
  if (flag('--long-ids-only')) {
    // That part alone, printed, for tuning the compaction threshold.
    await longIdBench(lib);
    process.stdout.write(longIdReport().join('\n') + '\n');
    return;
  }

  // Floors: a process that does nothing, under each runtime.
  const floors = [
    { key: 'true', label: 'spawn floor (/bin/true)', cmd: ['/bin/true'] },
    { key: 'node0', label: '`node -e 0`', cmd: [nodePath, '-e', '0'] },
  ];
  if (bunPath) floors.push({ key: 'bun0', label: '`bun -e 0`', cmd: [bunPath, '-e', '0'] });
  floors.push({ key: 'help', label: 'ours: `dist/nfsdcltrack -h` (start-up, no store)', cmd: [launcher, '-h'] });
  for (const f of floors) results.floors[f.key] = { label: f.label, ms: [] };
  for (let r = 0; r < cfg.runs; r++) {
    for (const f of floors) results.floors[f.key].ms.push(timeOnce(f.cmd[0], f.cmd.slice(1), {}).ms);
  }
  say('floors done');

  for (const size of cfg.sizes) {
    const list = clients(size);
    const sizeDir = path.join(work, `s${size}`);
    const proto = path.join(sizeDir, 'proto-ours');
    const tb = Date.now();
    await buildOurs(lib, proto, list);
    const tOurs = Date.now() - tb;
    const tc = Date.now();
    if (ref) buildC(path.join(sizeDir, 'proto-c'), list);
    say(`size ${size}: stores built (ours ${tOurs} ms, C ${Date.now() - tc} ms)`);
    if (size === BIG) {
      results.size.ours = fs.readdirSync(proto).reduce((n, f) => n + fs.statSync(path.join(proto, f)).size, 0);
      if (ref) results.size.c = fs.statSync(path.join(sizeDir, 'proto-c/main.sqlite')).size;
      results.size.clients = size;
    }
    for (const impl of impls) copyDir(path.join(sizeDir, impl.kind === 'c' ? 'proto-c' : 'proto-ours'), path.join(sizeDir, impl.key));

    const theOps = ops(size, list);
    for (const op of theOps) for (const impl of impls) ((results.latency[op.key] ??= { label: op.label })[impl.key] ??= {})[size] = [];
    for (let r = 0; r < cfg.runs; r++) {
      for (const op of theOps) {
        for (const impl of impls) {
          const res = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', path.join(sizeDir, impl.key), ...op.args(r)], envFor(impl, op.env));
          expectStatus(`${impl.key} ${op.key} @${size}`, res);
          results.latency[op.key][impl.key][size].push(res.ms);
        }
      }
    }
    say(`size ${size}: latency done`);

    if (size === BIG) {
      await gracedoneBench(sizeDir, size);
      rssBench(sizeDir, size, theOps);
    }
  }

  // A failure in one part is reported, and the rest still written.
  for (const [what, part] of [['journal-length cost', journalBench], ['long ids', longIdBench], ['storm', stormBench]]) {
    try {
      await part(lib);
    } catch (e) {
      failures.push(`${what}: ${e?.stack ?? e}`);
      say(`${what} failed: ${e?.message ?? e}`);
    }
  }
  report();
}

/** gracedone removing every record, each run on a fresh copy of the store. */
async function gracedoneBench(sizeDir, size) {
  for (const impl of impls) results.gracedone[impl.key] = [];
  const copies = [];
  for (let r = 0; r < cfg.gracedoneRuns; r++) {
    for (const impl of impls) {
      const dir = path.join(sizeDir, `gd-${impl.key}-${r}`);
      copyDir(path.join(sizeDir, impl.kind === 'c' ? 'proto-c' : 'proto-ours'), dir);
      copies.push(dir);
    }
  }
  // Warm the page cache for every copy alike: the copies were just written.
  for (let r = 0; r < cfg.gracedoneRuns; r++) {
    for (const impl of impls) {
      const dir = path.join(sizeDir, `gd-${impl.key}-${r}`);
      const res = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'gracedone', String(NOW + 3600)], envFor(impl, {}));
      expectStatus(`${impl.key} gracedone @${size}`, res);
      results.gracedone[impl.key].push(res.ms);
    }
  }
  results.gracedone.size = size;
  for (const d of copies) fs.rmSync(d, { recursive: true, force: true });
  say(`size ${size}: gracedone done`);
}

/** Peak RSS (VmHWM) of one invocation, through /usr/bin/time or python3's getrusage. */
function peakRssKiB(cmd, args, env) {
  if (fs.existsSync('/usr/bin/time')) {
    const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    const m = /(\d+)\s*$/.exec(r.stderr);
    if (m) return Number(m[1]);
  }
  const py = 'import resource,subprocess,sys; subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)';
  const r = spawnSync('python3', ['-c', py, cmd, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return Number(r.stdout.trim());
}

function rssBench(sizeDir, size, theOps) {
  const runs = cfg.rssRuns;
  for (const impl of impls) {
    const per = {};
    const rssOps = theOps.filter((o) => o.key !== 'remove');
    for (const op of rssOps) {
      const xs = [];
      for (let r = 0; r < runs; r++) {
        xs.push(peakRssKiB(impl.cmd[0], [...impl.cmd.slice(1), '-s', path.join(sizeDir, impl.key), ...op.args(1000 + r)], envFor(impl, op.env)));
      }
      per[op.key] = Math.max(...xs);
    }
    const xs = [];
    for (let r = 0; r < runs; r++) {
      const dir = path.join(sizeDir, `rss-gd-${impl.key}-${r}`);
      copyDir(path.join(sizeDir, impl.kind === 'c' ? 'proto-c' : 'proto-ours'), dir);
      xs.push(peakRssKiB(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'gracedone', String(NOW + 3600)], envFor(impl, {})));
      fs.rmSync(dir, { recursive: true, force: true });
    }
    per.gracedone = Math.max(...xs);
    results.rss[impl.key] = per;
  }
  results.rss.size = size;
  say(`size ${size}: peak RSS done`);
}

/**
 * What the journal's length costs a call: the latency table above starts from
 * freshly compacted stores (empty journals); between compactions the journal
 * grows to the threshold (128 KiB by default) and every call reads it whole.
 */
// Up to just under the compaction threshold (32 KiB): the write that crosses
// it compacts, so a call never sees more (and a measured v4.0 check, which
// appends, must not compact).
const JOURNAL_KIB = [0, 8, 16, 30];
async function journalBench(lib) {
  const n = Math.min(10_000, BIG);
  const list = clients(n);
  const base = path.join(work, 'journal');
  const oursImpls = impls.filter((i) => i.kind === 'ours');
  for (const kib of JOURNAL_KIB) {
    const proto = path.join(base, `base-${kib}`);
    await buildOurs(lib, proto, list);
    const store = new lib.Store({ dir: proto, compactBytes: 1e12 });
    // Session clients that sign in: about 125 bytes of journal each.
    const want = kib * 1024;
    for (let k = 0; fs.statSync(path.join(proto, lib.JOURNAL_NAME)).size < want; k++) {
      await store.mutate((tx) => {
        for (let j = 0; j < 64; j++) tx.put(freshId(`j${k}`, j), { time: NOW - 60, session: true });
      });
    }
    for (const impl of oursImpls) copyDir(proto, path.join(base, `${impl.key}-${kib}`));
  }
  const v41 = list.find((c) => c.session).id;
  const v40 = list.filter((c) => !c.session);
  for (const impl of oursImpls) for (const kib of JOURNAL_KIB) results.journal[`${impl.key}:${kib}:check`] = [];
  for (const impl of oursImpls) for (const kib of JOURNAL_KIB) results.journal[`${impl.key}:${kib}:check40`] = [];
  for (let r = 0; r < cfg.runs; r++) {
    for (const kib of JOURNAL_KIB) {
      for (const impl of oursImpls) {
        const dir = path.join(base, `${impl.key}-${kib}`);
        let res = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'check', v41], envFor(impl, { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }));
        expectStatus(`${impl.key} check, journal ${kib} KiB`, res);
        results.journal[`${impl.key}:${kib}:check`].push(res.ms);
        // A fresh copy: the check's own write would otherwise grow the journal run by run.
        copyDir(path.join(base, `base-${kib}`), dir);
        res = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'check', v40[r % v40.length].id], envFor(impl, {}));
        expectStatus(`${impl.key} v4.0 check, journal ${kib} KiB`, res);
        results.journal[`${impl.key}:${kib}:check40`].push(res.ms);
      }
    }
  }
  results.journal.clients = n;
  fs.rmSync(base, { recursive: true, force: true });
  say('journal-length cost done');
}

/**
 * The reclaim storm: every client of a fresh store sends a v4.0 check, from
 * `callers` concurrent callers, then the grace period ends (gracedone).
 */
/**
 * Creates on a store of long ids (issue 14): 100,000 clients with 1 KB ids
 * make a ~200 MiB snapshot, which a compaction rewrites whole. The creates
 * run one after another until the journal has been folded twice: the median
 * create, and the mean, which carries each create's share of the compactions.
 */
const LONG_IDS = { clients: QUICK ? 20_000 : 100_000, compactions: 2, maxCreates: 1000 };
async function longIdBench(lib) {
  const dir = path.join(work, 'long-ids');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // 1,024 bytes: 2,048 hex digits, sorted as generated.
  const longId = (tag, i) => `${hex(`${tag}-${String(i).padStart(7, '0')}-`)}${'6b'.repeat(1024)}`.slice(0, 2048);
  const tb = Date.now();
  await new lib.Store({ dir }).replaceAll(function* () {
    for (let i = 0; i < LONG_IDS.clients; i++) yield { id: longId('a', i), time: NOW - 86_400, session: true };
  });
  const snapBytes = fs.statSync(path.join(dir, lib.SNAPSHOT_NAME)).size;
  say(`long ids: ${LONG_IDS.clients} clients, ${(snapBytes / 1048576).toFixed(0)} MiB snapshot built in ${Date.now() - tb} ms`);
  const snapIno = () => fs.statSync(path.join(dir, lib.SNAPSHOT_NAME)).ino;
  const impl = impls.find((i) => i.kind === 'ours');
  const plain = [];
  const compacting = [];
  let journalAtCompaction = 0;
  for (let r = 0, ino = snapIno(); compacting.length < LONG_IDS.compactions && r < LONG_IDS.maxCreates; r++) {
    const journalBefore = fs.statSync(path.join(dir, lib.JOURNAL_NAME)).size;
    const res = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'create', longId('n', r)], envFor(impl, { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }));
    expectStatus(`${impl.key} create, long ids`, res);
    if (snapIno() === ino) plain.push(res.ms);
    else {
      compacting.push(res.ms);
      journalAtCompaction = journalBefore;
      ino = snapIno();
    }
  }
  const all = [...plain, ...compacting];
  results.longIds = { clients: LONG_IDS.clients, snapBytes, creates: all.length, plain, compacting, journalAtCompaction, mean: all.reduce((a, b) => a + b, 0) / all.length };
  say(`long ids: ${all.length} creates, ${compacting.length} compacting`);
}

function longIdReport() {
  const L = results.longIds;
  if (!L) return [];
  const f = (x) => x.toFixed(1);
  const plainMean = L.plain.reduce((a, b) => a + b, 0) / L.plain.length;
  return [
    `## Creates on a store of ${fmtSize(L.clients)} clients with 1 KB ids (${(L.snapBytes / 1048576).toFixed(0)} MiB snapshot)`,
    '',
    `${L.creates} creates of new 1 KB ids, one after another, until the journal was folded ${L.compacting.length} times (past ${(L.journalAtCompaction / 1024).toFixed(0)} KiB of journal; lib/store/policy.ts):`,
    '',
    '| create latency, median | mean of the creates that did not compact | a compacting create, median | amortised compaction cost per create | mean per create, all included |',
    '|---:|---:|---:|---:|---:|',
    `| ${f(median(L.plain))} ms | ${f(plainMean)} ms | ${f(median(L.compacting))} ms | ${f(L.mean - plainMean)} ms | ${f(L.mean)} ms |`,
    '',
  ];
}

async function stormBench(lib) {
  const { clients: n, checks, callers } = cfg.storm;
  const list = clients(n);
  const dir0 = path.join(work, 'storm');
  await buildOurs(lib, path.join(dir0, 'proto-ours'), list);
  if (ref) buildC(path.join(dir0, 'proto-c'), list);
  const order = [];
  for (let i = 0; i < checks; i++) order.push(list[i % n].id);
  for (let i = order.length - 1; i > 0; i--) {
    const j = (i * 2654435761) % (i + 1); // deterministic shuffle
    [order[i], order[j]] = [order[j], order[i]];
  }
  const who = impls.filter((i) => i.kind === 'c' || i.key === OURS || i.key === 'proto' || flag('--storm-all'));
  for (const impl of who) {
    const dir = path.join(dir0, impl.key);
    copyDir(path.join(dir0, impl.kind === 'c' ? 'proto-c' : 'proto-ours'), dir);
    const boot = Math.floor(Date.now() / 1000);
    const run = await concurrently(order.length, callers, `storm ${impl.key}`, (i) => [impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'check', order[i]], envFor(impl, {})]);
    let checksMs = run.ms;
    const { bad, done } = run;
    // Cut short (--storm-cap): the rest is extrapolated from the rate so far, and said so.
    const capped = done < order.length;
    if (capped) checksMs = (checksMs * order.length) / done;
    const g = timeOnce(impl.cmd[0], [...impl.cmd.slice(1), '-s', dir, 'gracedone', String(boot)], envFor(impl, {}));
    expectStatus(`${impl.key} storm gracedone`, g);
    if (bad) failures.push(`${impl.key} storm: ${bad} of ${order.length} checks failed`);
    const totalMs = checksMs + g.ms;
    results.storm[impl.key] = { checksMs, gracedoneMs: g.ms, totalMs, failed: bad, done, capped };
    say(`storm ${impl.key}: ${(totalMs / 1000).toFixed(1)} s`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  Object.assign(results.storm, { clients: n, checks, callers });
  // The same number of processes from the same callers, doing nothing but start:
  // what any program under this runtime pays before it reads a byte.
  const floors = [];
  if (bunPath) {
    floors.push({ key: 'bun0', label: '`bun -e 0`', cmd: [bunPath, '-e', '0'] });
    floors.push({ key: 'bunfs', label: "`bun -e \"require('fs')\"`", cmd: [bunPath, '-e', "require('fs')"] });
  }
  floors.push({ key: 'help', label: 'ours: `dist/nfsdcltrack -h`', cmd: [launcher, '-h'] });
  results.storm.floors = [];
  for (const f of floors) {
    const r = await concurrently(checks, callers, `storm floor ${f.key}`, () => [f.cmd[0], f.cmd.slice(1), kernelEnv({})]);
    results.storm.floors.push({ label: f.label, ms: r.capped ? (r.ms * checks) / r.done : r.ms, capped: r.capped });
    say(`storm floor ${f.key}: ${(r.ms / 1000).toFixed(1)} s`);
  }
}

/**
 * Spawn n processes, `callers` at a time, each as soon as a slot frees; stop
 * starting new ones after STORM_CAP_S. spawnArgs(i) gives [command, args, env].
 */
async function concurrently(n, callers, what, spawnArgs) {
  const start = process.hrtime.bigint();
  const deadline = Date.now() + STORM_CAP_S * 1000;
  let next = 0;
  let bad = 0;
  let done = 0;
  const progress = setInterval(() => say(`${what}: ${done} of ${n}`), 30_000);
  const worker = async () => {
    while (next < n && Date.now() < deadline) {
      const [cmd, args, env] = spawnArgs(next++);
      const status = await new Promise((resolve) => {
        const p = spawn(cmd, args, { env, stdio: 'ignore' });
        p.on('error', () => resolve(-1));
        p.on('exit', (code) => resolve(code));
      });
      if (status !== 0) bad++;
      done++;
    }
  };
  await Promise.all(Array.from({ length: callers }, worker));
  clearInterval(progress);
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, bad, done, capped: done < n };
}

// --- the report -----------------------------------------------------------------

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2) : '–');
const med = (op, impl, size) => median(results.latency[op]?.[impl]?.[size] ?? []);
const fmtSize = (n) => n.toLocaleString('en-US');

function machine() {
  const m = machineInfo(work);
  return [m.host, `${m.runtimes}; dist/nfsdcltrack runs ${launcherIsBun ? 'Bun' : 'Node'} (${launcherRuntime})`];
}

function report() {
  const lines = [];
  const P = (s = '') => lines.push(s);
  const ours = results.latency.check?.ours ? 'ours' : null;
  const oursLabel = impls.find((i) => i.key === 'ours').short;
  P(`# nfsdcltrack benchmark${QUICK ? ' (quick run)' : ''}`);
  P();
  P(`${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} — ${machine().join('; ')}.`);
  P();
  P(
    `Medians of ${cfg.runs} calls per cell; every call is one process spawned with the kernel's bare environment, ` +
      `the implementations taking turns call by call. Times are wall-clock from spawn to exit as seen by the caller ` +
      `(spawn floor below). Written by \`npm run bench${QUICK ? ' -- --quick' : ''}\` in ${((Date.now() - t0) / 1000).toFixed(0)} s.`,
  );
  P();
  P('## Targets');
  P();
  P(`| target | ${oursLabel} | C | ratio | goal | result |`);
  P('|---|---:|---:|---:|---|---|');
  const hasC = impls.some((i) => i.key === 'c');
  for (const op of ['check', 'check40', 'create', 'remove']) {
    for (const size of [SMALL, BIG]) {
      const a = med(op, 'ours', size);
      const c = med(op, 'c', size);
      const r = ratio(a, c);
      P(`| ${results.latency[op].label} @ ${fmtSize(size)} | ${f2(a)} ms | ${f2(c)} ms | ${fr(r)} | ≤ 3× C | ${pass(hasC ? r <= 3 : undefined)} |`);
    }
  }
  for (const op of ['check', 'check40', 'create', 'remove', 'create41g', 'init']) {
    const a = ratio(med(op, 'ours', BIG), med(op, 'ours', SMALL));
    const c = ratio(med(op, 'c', BIG), med(op, 'c', SMALL));
    P(`| flat: ${results.latency[op].label}, ${fmtSize(BIG)} vs ${fmtSize(SMALL)} | ${fr(a)} | ${fr(c)} | | ≤ 1.15× | ${pass(a <= 1.15)} |`);
  }
  {
    const a = median(results.gracedone.ours ?? []);
    const c = median(results.gracedone.c ?? []);
    P(`| gracedone removing all ${fmtSize(results.gracedone.size ?? BIG)} | ${f2(a)} ms | ${f2(c)} ms | ${fr(ratio(a, c))} | faster than C | ${pass(hasC ? a < c : undefined)} |`);
  }
  {
    const s = results.storm;
    const a = s.ours?.totalMs / 1000;
    const c = s.c?.totalMs / 1000;
    P(
      `| reclaim storm: ${fmtSize(s.checks)} v4.0 checks by ${s.callers} callers on ${fmtSize(s.clients)} clients, then gracedone | ` +
        // "Well inside" the 90 s grace period: at most half of it. Judged only at full size.
        `${f2(a)} s | ${f2(c)} s | ${fr(ratio(a, c))} | well inside 90 s | ${pass(s.checks >= 10_000 ? a <= 45 && !s.ours?.failed : undefined)} |`,
    );
  }
  {
    const a = results.rss.ours ? Math.max(...Object.values(results.rss.ours)) : NaN;
    const c = results.rss.c ? Math.max(...Object.values(results.rss.c)) : NaN;
    P(`| peak RSS per call @ ${fmtSize(results.rss.size ?? BIG)} (worst command) | ${f2(a / 1024)} MiB | ${f2(c / 1024)} MiB | ${fr(ratio(a, c))} | ≤ 64 MiB | ${pass(a <= 64 * 1024)} |`);
  }
  {
    const a = results.size.ours;
    const c = results.size.c;
    P(`| store size @ ${fmtSize(results.size.clients ?? BIG)} | ${f2(a / 1e6)} MB | ${f2(c / 1e6)} MB | ${fr(ratio(a, c))} | ≤ main.sqlite | ${pass(hasC ? a <= c : undefined)} |`);
  }
  P();
  P('## Latency by store size (median ms per call)');
  P();
  P(`| command | implementation | ${cfg.sizes.map(fmtSize).join(' | ')} | ${fmtSize(BIG)} / ${fmtSize(SMALL)} |`);
  P(`|---|---|${cfg.sizes.map(() => '---:').join('|')}|---:|`);
  for (const [op, byImpl] of Object.entries(results.latency)) {
    for (const impl of impls) {
      const row = cfg.sizes.map((s) => f2(med(op, impl.key, s)));
      P(`| ${byImpl.label} | ${impl.short} | ${row.join(' | ')} | ${fr(ratio(med(op, impl.key, BIG), med(op, impl.key, SMALL)))} |`);
    }
  }
  P();
  P('## Start-up floors (median ms)');
  P();
  P('| process | ms |');
  P('|---|---:|');
  for (const f of Object.values(results.floors)) P(`| ${f.label} | ${f2(median(f.ms))} |`);
  P();
  P(`## gracedone removing all ${fmtSize(results.gracedone.size ?? BIG)} records (median of ${cfg.gracedoneRuns}, fresh copy each)`);
  P();
  P('| implementation | ms |');
  P('|---|---:|');
  for (const impl of impls) P(`| ${impl.short} | ${f2(median(results.gracedone[impl.key] ?? []))} |`);
  P();
  if (results.journal.clients) {
    P(`## Cost of the journal's length (${fmtSize(results.journal.clients)} clients, median ms per call)`);
    P();
    P('The tables above start from freshly compacted stores. Between compactions the journal grows up to the threshold (32 KiB), and every call reads and checks it whole; each v4.0 check runs on a fresh copy of its store:');
    P();
    P(`| command | implementation | ${JOURNAL_KIB.map((k) => `${k} KiB`).join(' | ')} |`);
    P(`|---|---|${JOURNAL_KIB.map(() => '---:').join('|')}|`);
    for (const op of ['check', 'check40']) {
      for (const impl of impls.filter((i) => i.kind === 'ours')) {
        P(`| ${results.latency[op].label} | ${impl.short} | ${JOURNAL_KIB.map((k) => f2(median(results.journal[`${impl.key}:${k}:${op}`] ?? []))).join(' | ')} |`);
      }
    }
    P();
  }
  P(`## Reclaim storm: ${fmtSize(results.storm.checks)} v4.0 checks, ${results.storm.callers} concurrent callers, ${fmtSize(results.storm.clients)} clients, then gracedone`);
  P();
  P('| implementation | checks (s) | gracedone (ms) | total (s) | checks/s | failed |');
  P('|---|---:|---:|---:|---:|---:|');
  for (const impl of impls) {
    const s = results.storm[impl.key];
    if (!s) continue;
    const cut = s.capped ? ` (cut at ${STORM_CAP_S} s after ${s.done.toLocaleString('en-US')} checks; extrapolated)` : '';
    P(`| ${impl.short}${cut} | ${f2(s.checksMs / 1000)} | ${f2(s.gracedoneMs)} | ${f2(s.totalMs / 1000)} | ${f2(results.storm.checks / (s.checksMs / 1000))} | ${s.failed} |`);
  }
  P();
  if (results.storm.floors?.length) {
    P(`Start-up alone: ${fmtSize(results.storm.checks)} processes from ${results.storm.callers} callers, each doing nothing but start (exit status not checked):`);
    P();
    P('| process | total (s) |');
    P('|---|---:|');
    for (const f of results.storm.floors) P(`| ${f.label}${f.capped ? ' (extrapolated)' : ''} | ${f2(f.ms / 1000)} |`);
    P();
  }
  P(`## Peak RSS per call at ${fmtSize(results.rss.size ?? BIG)} clients (MiB, max of ${cfg.rssRuns})`);
  P();
  const rssOps = Object.keys(results.rss.ours ?? {});
  P(`| implementation | ${rssOps.join(' | ')} |`);
  P(`|---|${rssOps.map(() => '---:').join('|')}|`);
  for (const impl of impls) {
    const per = results.rss[impl.key];
    if (per) P(`| ${impl.short} | ${rssOps.map((o) => f2(per[o] / 1024)).join(' | ')} |`);
  }
  P();
  for (const l of longIdReport()) P(l);
  P(`## Store size at ${fmtSize(results.size.clients ?? BIG)} clients`);
  P();
  P(`ours (clients.snap + clients.journal): ${(results.size.ours ?? NaN).toLocaleString('en-US')} bytes; C main.sqlite: ${(results.size.c ?? NaN).toLocaleString('en-US')} bytes.`);
  P();
  P(`![latency against store size](latency${suffix}.svg)`);
  if (failures.length) {
    P();
    P('## Unexpected exit statuses');
    P();
    for (const f of failures.slice(0, 50)) P(`- ${f}`);
  }
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, `results${suffix}.md`), md);
  fs.writeFileSync(
    path.join(outDir, `latency${suffix}.svg`),
    renderChart({
      sizes: cfg.sizes,
      panels: ['check', 'check40', 'create', 'remove', 'create41g', 'init'].map((op) => ({
        title: results.latency[op].label,
        series: impls.map((impl) => ({ name: impl.short, kind: impl.key, points: cfg.sizes.map((s) => med(op, impl.key, s)) })),
      })),
      subtitle: `median ms per call, ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? '?'}`,
    }),
  );
  say(`wrote ${path.join(outDir, `results${suffix}.md`)} and latency${suffix}.svg`);
}

try {
  await main();
} finally {
  if (!flag('--keep')) fs.rmSync(work, { recursive: true, force: true });
  else say(`kept ${work}`);
}
if (failures.length) process.exitCode = 1;
