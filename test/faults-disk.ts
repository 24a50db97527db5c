// Fault injection, part 2: what the disk can do to the store — power cuts,
// torn and damaged files, a full disk, a read-only disk — and hostile paths
// and permissions (issue 3).
import t from 'tap';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { RecState } from '../lib/store/format';
import { Store } from '../lib/store/store';
import { baseRecords, rng, buildStore, copyDir, hasStackTrace, nowSec, OPEN_FAILURES, pool, proven, readState, run, tmpdir } from './lib/faults';
import { materialize, PowerCutModel } from './lib/powercut';

const OLD = 1000;
const RECENT = nowSec() - 100;
const BASE = baseRecords();
const same = (a: RecState | null | undefined, b: RecState | null | undefined) =>
  (a ?? null) === null ? (b ?? null) === null : !!b && a!.time === b.time && a!.session === b.session;
const present = (session: boolean) => (s: RecState | null) => s !== null && s.session === session;
const absent = (s: RecState | null) => s === null;
const SHM = fs.existsSync('/dev/shm') ? '/dev/shm' : undefined;


async function baseStore(dir: string): Promise<void> {
  await buildStore(dir, BASE.slice(0, 2));
  await new Store({ dir }).compact();
  await buildStore(dir, BASE.slice(2));
}

// --- power cut ------------------------------------------------------------------

const strace = spawnSync('strace', ['-V'], { encoding: 'utf8' });

t.test('power cut after every system call: only fsync\'ed data survives', { skip: strace.status !== 0 ? 'SKIP: strace is not installed' : false }, async (t) => {
  if (strace.status !== 0) t.comment('SKIP: strace is not installed: the power-cut model cannot record system calls');
  const root = tmpdir('power');
  const base = path.join(root, 'base');
  await baseStore(base);
  const baseState = readState(base);
  interface PCmd {
    name: string;
    args: string[];
    env?: (recdir: string) => Record<string, string>;
    after: Record<string, (s: RecState | null) => boolean>;
    fresh?: boolean;
    prep?: (dir: string) => void;
  }
  const cmds: PCmd[] = [
    { name: 'init', args: ['init'], after: {}, fresh: true },
    { name: 'create v4.0', args: ['create', 'c0c0'], after: { c0c0: present(false) } },
    { name: 'create v4.1', args: ['create', 'c1c1'], env: () => ({ NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), after: { c1c1: present(true) } },
    { name: 'remove', args: ['remove', 'b1b1'], after: { b1b1: absent } },
    { name: 'check v4.0', args: ['check', 'a1a1'], after: { a1a1: (s) => s !== null && s.time > OLD } },
    { name: 'check legacy', args: ['check', 'd0d0'], env: (r) => ({ NFSDCLTRACK_LEGACY_RECDIR: r }), after: { d0d0: present(false) } },
    { name: 'gracedone', args: ['gracedone', String(OLD + 1)], after: { a1a1: absent, a2a2: absent } },
    { name: 'create+compaction', args: ['create', 'e0e0'], env: () => ({ NFSDCLTRACK_COMPACT_BYTES: '64' }), after: { e0e0: present(false) } },
    {
      name: 'create after a torn append',
      args: ['create', 'c2c2'],
      after: { c2c2: present(false) },
      prep: (d) => fs.appendFileSync(path.join(d, 'clients.journal'), '2 3 set c3c3 12'),
    },
  ];
  const rand = rng(4242);
  let states = 0;
  let calls = 0;
  const bad: string[] = [];
  const t0 = Date.now();
  await pool(cmds, 2, async (cmd, i) => {
    const croot = path.join(root, `c${i}`);
    const dir = path.join(croot, 'store');
    fs.mkdirSync(croot, { recursive: true });
    if (!cmd.fresh) copyDir(base, dir);
    cmd.prep?.(dir);
    const recdir = path.join(croot, 'recdir');
    fs.mkdirSync(recdir);
    const initial = PowerCutModel.readDir(dir);
    const log = path.join(croot, 'strace.log');
    const traced = 'openat,open,creat,write,pwrite64,writev,pwritev,ftruncate,truncate,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,link,linkat,close';
    const r = await run(dir, cmd.args, {
      env: cmd.env?.(recdir) ?? {},
      prefix: ['/usr/bin/strace', '-f', '-qq', '-y', '-xx', '-s', '16777216', '-o', log, '-e', `trace=${traced}`],
    });
    if (r.status !== 0) bad.push(`${cmd.name}: status ${r.status}: ${r.stderr}`);
    const snaps = PowerCutModel.replay(dir, initial, fs.readFileSync(log, 'latin1'), rand, 6);
    calls += snaps.length - 1;
    const scratch = fs.mkdtempSync(path.join(SHM ?? croot, 'nfsdcltrack-pc-'));
    const changed = Object.keys(cmd.after);
    for (let k = 0; k < snaps.length; k++) {
      const last = k === snaps.length - 1;
      const variants: [string, Map<string, Buffer>][] = [
        ['power cut', snaps[k].durable],
        ['kill', snaps[k].volatile],
        ...snaps[k].mixed.map((m, j) => [`partial write-back ${j}`, m] as [string, Map<string, Buffer>]),
      ];
      for (const [kind, files] of variants) {
        states++;
        const where = `${cmd.name}, ${kind} after #${k} ${snaps[k].call}`;
        const sdir = path.join(scratch, 's');
        materialize(sdir, files);
        let s;
        try {
          s = readState(sdir);
        } catch (e) {
          bad.push(`${where}: read threw ${(e as Error).message}`);
          continue;
        }
        if (!s.healthy) {
          bad.push(`${where}: unhealthy: ${s.problems.join('; ')}`);
          continue;
        }
        if (cmd.fresh) {
          if (s.records.size !== 0) bad.push(`${where}: records appeared`);
        } else {
          const done = changed.map((id) => cmd.after[id](s.records.get(id) ?? null));
          const untouched = changed.map((id) => same(s.records.get(id), baseState.records.get(id)));
          if (!(done.every(Boolean) || untouched.every(Boolean))) bad.push(`${where}: change half-done`);
          if (last && !done.every(Boolean)) bad.push(`${where}: the acknowledged change did not survive`);
          for (const [id, rec] of baseState.records) {
            if (!changed.includes(id) && !same(s.records.get(id), rec)) bad.push(`${where}: acknowledged ${id} lost`);
          }
        }
        // The next writer works on what the cut left.
        try {
          await new Store({ dir: sdir }).mutate((tx) => {
            tx.put('f0f0', { time: RECENT, session: true });
          });
          const after = readState(sdir);
          if (!after.healthy || !after.records.has('f0f0')) bad.push(`${where}: next writer failed`);
          for (const id of changed) if (!same(after.records.get(id), s.records.get(id))) bad.push(`${where}: next writer changed ${id}`);
        } catch (e) {
          bad.push(`${where}: next writer threw ${(e as Error).message}`);
        }
      }
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  });
  t.same(bad.slice(0, 30), [], 'every power-cut state keeps every acknowledged change and no half change');
  t.ok(calls > 60, `${calls} store system calls recorded`);
  t.comment(`power cut: ${cmds.length} commands under strace, ${calls} store system calls, ${states} crash states checked, ${Date.now() - t0} ms`);
  fs.rmSync(root, { recursive: true, force: true });
});

// --- torn and damaged files --------------------------------------------------------

/** A store whose history the test knows line by line. */
async function historyStore(dir: string) {
  const snapRecs = [
    { id: '5101', time: RECENT, session: false },
    { id: '5102', time: RECENT, session: true },
    { id: '5103', time: OLD, session: true },
    { id: '5104', time: RECENT, session: false },
    { id: '5105', time: RECENT, session: true },
  ];
  await buildStore(dir, snapRecs);
  await new Store({ dir }).compact();
  type Op = [string, RecState | null];
  const ops: Op[] = [
    ['6a01', { time: RECENT, session: false }],
    ['6a02', { time: RECENT, session: true }],
    ['5101', null],
    ['5102', { time: RECENT + 5, session: true }],
    ['6a01', null],
    ['6a03', { time: RECENT, session: true }],
    ['6a01', { time: RECENT + 7, session: false }],
    ['5103', null],
    ['6a02', null],
  ];
  for (const [id, st] of ops) {
    await new Store({ dir }).mutate((tx) => {
      tx.put(id, st);
    });
  }
  /** True state after the first n journal entries. */
  const truth = (n: number) => {
    const m = new Map<string, RecState>(snapRecs.map((r) => [r.id, { time: r.time, session: r.session }]));
    for (const [id, st] of ops.slice(0, n)) {
      if (st) m.set(id, st);
      else m.delete(id);
    }
    return m;
  };
  const ids = [...new Set([...snapRecs.map((r) => r.id), ...ops.map(([id]) => id), '7f7f', ''])];
  return { ops, truth, ids };
}

/** Nothing granted that truth lacks; the reclaim count never below the truth. */
function failSafe(dir: string, truth: Map<string, RecState>, ids: string[]): string[] {
  const bad: string[] = [];
  let view;
  try {
    view = new Store({ dir }).read();
  } catch (e) {
    // Unreadable counts as refusing everyone (check answers 255), if it says so cleanly.
    return (e as NodeJS.ErrnoException).code ? [] : [`read threw ${(e as Error).message}`];
  }
  try {
    for (const id of ids) if (view.get(id) && !truth.has(id)) bad.push(`granted ${id || '(empty id)'}`);
    for (const g of [OLD + 1, RECENT + 1, RECENT + 6, 2 ** 40]) {
      const n = view.countReclaiming(g);
      const real = [...truth.values()].filter((r) => !r.session || r.time < g).length;
      if (n !== null && n < real) bad.push(`counts ${n} clients still to reclaim at ${g}, truth ${real}`);
    }
  } finally {
    view.close();
  }
  return bad;
}

t.test('torn and damaged files: never a wrong grant, never a stack trace', async (t) => {
  const root = tmpdir('damage');
  const base = path.join(root, 'base');
  const { ops, truth, ids } = await historyStore(base);
  const full = truth(ops.length);
  t.same(readState(base).records, full, 'the store holds the known history');
  const journal = fs.readFileSync(path.join(base, 'clients.journal'));
  const snap = fs.readFileSync(path.join(base, 'clients.snap'));
  const bad: string[] = [];
  const cliCases: { dir: string; label: string; torn: boolean }[] = [];
  const rand = rng(777);
  let n = 0;
  const scratch = (label: string, keepForCli: boolean, torn = false) => {
    const d = path.join(root, `d${n++}`);
    copyDir(base, d);
    if (keepForCli) cliCases.push({ dir: d, label, torn });
    return d;
  };
  const done = (d: string, keep: boolean) => keep || fs.rmSync(d, { recursive: true, force: true });

  // 1. The journal cut at every byte offset of its last three records (and its header).
  const lines: number[] = [];
  for (let i = 0; i < journal.length; i++) if (journal[i] === 10) lines.push(i + 1);
  const from = lines[lines.length - 4];
  const offsets = [...Array.from({ length: lines[0] + 1 }, (_, i) => i), ...Array.from({ length: journal.length - from + 1 }, (_, i) => from + i)];
  for (const off of offsets) {
    const keep = off % 9 === 0;
    const d = scratch(`journal cut at ${off}`, keep, !lines.includes(off) && off !== 0);
    fs.truncateSync(path.join(d, 'clients.journal'), off);
    const complete = lines.filter((l) => l <= off).length;
    const tr = truth(Math.max(0, complete - 1));
    for (const b of failSafe(d, tr, ids)) bad.push(`cut at ${off}: ${b}`);
    if (off > lines[0]) {
      // Nothing the remaining complete lines prove is refused.
      const v = new Store({ dir: d }).read();
      for (const [id] of tr) if (!v.get(id)) bad.push(`cut at ${off}: refused ${id} though the journal proves it`);
      v.close();
    }
    done(d, keep);
  }
  // 2. Random bytes flipped or overwritten, in every store file.
  const FLIPS = 120;
  for (const [file, content] of [['clients.journal', journal], ['clients.snap', snap]] as const) {
    for (let k = 0; k < FLIPS; k++) {
      const keep = k % 12 === 0;
      const d = scratch(`${file} damaged #${k}`, keep);
      const buf = Buffer.from(content);
      const count = 1 + Math.floor(rand() * 3);
      for (let j = 0; j < count; j++) {
        const at = Math.floor(rand() * buf.length);
        if (rand() < 0.5) buf[at] ^= 1 << Math.floor(rand() * 8);
        else buf.fill(Math.floor(rand() * 256), at, Math.min(buf.length, at + 1 + Math.floor(rand() * 40)));
      }
      fs.writeFileSync(path.join(d, file), buf);
      for (const b of failSafe(d, full, ids)) {
        bad.push(`${file} damaged #${k}: ${b}`);
        if (process.env.FAULTS_KEEP) fs.cpSync(d, `${process.env.FAULTS_KEEP}/${file}-${k}`, { recursive: true });
      }
      done(d, keep);
    }
  }
  // 3. Each file deleted or emptied.
  for (const file of ['clients.journal', 'clients.snap']) {
    for (const how of ['deleted', 'emptied']) {
      const d = scratch(`${file} ${how}`, true);
      if (how === 'deleted') fs.unlinkSync(path.join(d, file));
      else fs.truncateSync(path.join(d, file), 0);
      for (const b of failSafe(d, full, ids)) bad.push(`${file} ${how}: ${b}`);
    }
  }
  t.same(bad.slice(0, 20), [], `no wrong grant in ${n} damaged stores`);
  const tCli = Date.now();

  // Through the program: checks answer 0 or 255, damage is logged (once), no
  // stack trace; then a writer repairs a torn tail.
  const cliBad: string[] = [];
  let cliRuns = 0;
  await pool(cliCases, 3, async (c) => {
    const unhealthy = !readState(c.dir).healthy;
    for (const id of ['5104', '6a01', '6a02']) {
      const r = await run(c.dir, ['check', id], { env: {} });
      cliRuns++;
      if (r.status !== 0 && r.status !== 255) cliBad.push(`${c.label}: check ${id} -> ${r.status}`);
      if (r.status === 0 && !full.has(id) && !(c.label.includes('cut') && id === '6a02')) cliBad.push(`${c.label}: granted ${id}`);
      if (hasStackTrace(r.stderr)) cliBad.push(`${c.label}: stack trace ${r.stderr}`);
      const logged = (r.stderr.match(/is damaged \(/g) ?? []).length;
      if (unhealthy && logged !== 1) cliBad.push(`${c.label}: damage logged ${logged} times: ${r.stderr}`);
    }
    if (c.torn) {
      const w = await run(c.dir, ['create', '6b01'], { env: {} });
      cliRuns++;
      const after = new Store({ dir: c.dir }).read();
      if (w.status !== 0 || (after.journal?.parsed.tornBytes ?? 0) !== 0) cliBad.push(`${c.label}: torn tail not repaired (${w.status})`);
      if (!after.get('6b01')) cliBad.push(`${c.label}: the repairing write is not provable`);
      after.close();
    }
  });
  t.same(cliBad.slice(0, 20), [], `${cliRuns} program runs on damaged stores behave`);
  t.comment(`damage: ${offsets.length} journal cuts, ${2 * FLIPS} random byte damages, 4 deleted/emptied files; ${cliRuns} program runs (${Date.now() - tCli} ms)`);
  fs.rmSync(root, { recursive: true, force: true });
});

// --- full disk, read-only disk --------------------------------------------------------

function tryMount(mnt: string, size: string): string | null {
  fs.mkdirSync(mnt, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'nfsdcltrack-faults', mnt], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || r.error?.message || `mount exited ${r.status}`).trim();
}
const umount = (mnt: string) => spawnSync('umount', ['-l', mnt]);

/** Fill the file system with a file until it is full; returns its path. */
function fill(dir: string, leaveBytes = 0): string {
  const p = path.join(dir, 'filler');
  const fd = fs.openSync(p, 'w');
  const block = Buffer.alloc(4096, 0x55);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch {
    /* ENOSPC */
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  if (leaveBytes > 0) fs.truncateSync(p, Math.max(0, fs.statSync(p).size - leaveBytes));
  return p;
}

t.test('full disk and read-only disk (a small tmpfs)', async (t) => {
  const root = tmpdir('full');
  const mnt = path.join(root, 'mnt');
  const why = tryMount(mnt, '256k');
  if (why !== null) {
    t.comment(`SKIP: full/read-only disk tests need to mount a tmpfs (run as root): ${why}`);
    t.ok(true, `SKIP: cannot mount a tmpfs: ${why}`, { skip: `cannot mount a tmpfs: ${why}` });
    return;
  }
  try {
    const dir = path.join(mnt, 'store');
    t.equal((await run(dir, ['init'])).status, 0, 'init on the small disk');
    const acked: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = `10${i.toString(16).padStart(2, '0')}`;
      const r = await run(dir, ['create', id], { env: { NFSDCLTRACK_CLIENT_HAS_SESSION: i % 2 ? 'Y' : 'N' } });
      if (r.status === 0) acked.push(id);
    }
    t.equal(acked.length, 6, 'creates work while there is space');
    // tmpfs allocates whole pages: bring the journal to the end of its last
    // page, so that the disk is really full for the next append.
    {
      const { Store } = await import('../lib/store/store');
      const jp = path.join(dir, 'clients.journal');
      for (let i = 0; fs.statSync(jp).size % 4096 < 4096 - 60 && i < 200; i++) {
        const id = (0x1100 + i).toString(16);
        await new Store({ dir, compactBytes: 1 << 30 }).mutate((tx) => void tx.put(id, { time: RECENT, session: true }));
        acked.push(id);
      }
    }
    const filler = fill(mnt);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const id = `20${i.toString(16).padStart(2, '0')}`;
      const r = await run(dir, ['create', id], { env: { NFSDCLTRACK_COMPACT_BYTES: i === 4 ? '64' : '131072' } });
      t.notOk(hasStackTrace(r.stderr), 'no stack trace when full');
      statuses.push(r.status ?? -1);
      if (r.status === 0) acked.push(id);
    }
    t.ok(statuses.some((s) => s === 135), `creates fail with 135 once the disk is full (${statuses})`);
    t.ok(statuses.every((s) => s === 0 || s === 135), 'and with no other status');
    let state = readState(dir);
    t.ok(state.healthy, 'the store is healthy on a full disk');
    t.same(acked.filter((id) => !state.records.has(id)), [], 'nothing acknowledged is lost');
    const chk = await run(dir, ['check', '1000']);
    {
      const status = chk.status;
      t.equal(status, 0, 'a v4.0 check of a known client succeeds on a full disk (time not updated)');
    }
    t.equal((await run(dir, ['check', '1001'], { env: { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } })).status, 0, 'a v4.1 check too');
    t.equal((await run(dir, ['check', '7777'])).status, 255, 'an unknown client is refused');
    t.notOk(fs.existsSync(path.join(dir, 'clients.snap.tmp')), 'no temporary snapshot left behind');
    fs.unlinkSync(filler);
    const again = await run(dir, ['create', '3000']);
    t.equal(again.status, 0, 'creates work again once space is freed');
    acked.push('3000');
    state = readState(dir);
    t.ok(state.healthy);
    t.same(acked.filter((id) => !state.records.has(id)), [], 'still nothing lost');

    // Compaction needs no more than one new snapshot (plus a page for the new journal).
    const { Store } = await import('../lib/store/store');
    const big = path.join(mnt, 'big');
    fs.mkdirSync(big, { mode: 0o700 });
    const recs = Array.from({ length: 1500 }, (_, i) => ({ id: (0x4000 + i).toString(16), time: i < 500 ? OLD : RECENT, session: true }));
    const s0 = new Store({ dir: big, compactBytes: 1 << 30 });
    await s0.replaceAll(() => recs.map((r) => ({ ...r })));
    for (let i = 0; i < 40; i++) await s0.mutate((tx) => void tx.put((0x6000 + i).toString(16), { time: RECENT, session: false }));
    const before = readState(big);
    // The size of the snapshot a gracedone will write, measured on a copy.
    const probe = path.join(root, 'probe');
    copyDir(big, probe);
    await new Store({ dir: probe }).gracedone(BigInt(OLD + 1));
    const newSnap = fs.statSync(path.join(probe, 'clients.snap')).size;
    const page = 4096;
    const need = Math.ceil(newSnap / page) * page + page;
    const expired = recs.filter((r) => r.time === OLD).map((r) => r.id);
    // Exactly one new snapshot (and a page) free, on a copy: the compaction fits.
    const copy = path.join(mnt, 'copy');
    copyDir(big, copy);
    let f2 = fill(mnt, need);
    const ok = await run(copy, ['gracedone', String(OLD + 1)]);
    t.equal(ok.status, 0, `gracedone's compaction fits in one snapshot's space (${need} bytes free): ${ok.stderr.trim()}`);
    t.equal(readState(copy).records.size, before.records.size - 500, 'the old records are gone, the rest kept');
    fs.unlinkSync(f2);
    fs.rmSync(copy, { recursive: true });
    // Too little space for a snapshot, as the C program never needs: the
    // expired clients are deleted by journal entries instead, and it says so.
    f2 = fill(mnt, need - 2 * page);
    const tight = await run(big, ['gracedone', String(OLD + 1)]);
    t.equal(tight.status, 0, `gracedone succeeds when a snapshot does not fit: ${tight.stderr.trim()}`);
    t.match(tight.stderr, /cannot write a new snapshot.*deleting the 500 expired client\(s\) by journal entries instead/, 'and logs how');
    const after = readState(big);
    t.equal(after.records.size, before.records.size - 500, 'the old records are gone, the rest kept');
    t.same(expired.filter((id) => proven(big, id)), [], 'no expired client may reclaim');
    t.notOk(fs.existsSync(path.join(big, 'clients.snap.tmp')), 'no temporary snapshot left behind');
    fs.unlinkSync(f2);

    // Read-only: writes fail cleanly, checks of existing clients still succeed.
    const ro = spawnSync('mount', ['-o', 'remount,ro', mnt], { encoding: 'utf8' });
    if (ro.status !== 0) {
      t.comment(`SKIP: cannot remount read-only: ${ro.stderr}`);
    } else {
      for (const args of [['create', '5000'], ['remove', '1000'], ['gracedone', '99999999999']]) {
        const r = await run(dir, args);
        t.equal(r.status, 135, `${args[0]} on a read-only disk fails with 135`);
        t.notOk(hasStackTrace(r.stderr), 'cleanly');
      }
      {
        const status = (await run(dir, ['check', '1000'])).status;
        t.equal(status, 0, 'a v4.0 check of a known client succeeds on a read-only disk (time not updated)');
      }
      t.equal((await run(dir, ['check', '1001'], { env: { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } })).status, 0, 'a v4.1 check succeeds');
      t.equal((await run(dir, ['check', '5000'])).status, 255, 'an unknown client is refused');
      const init = await run(dir, ['init']);
      t.ok(init.status === 0 || init.status === 226, `init on a read-only disk: 0, or EROFS as 226 (got ${init.status})`);
      spawnSync('mount', ['-o', 'remount,rw', mnt]);
      t.same(acked.filter((id) => !readState(dir).records.has(id)), [], 'nothing lost after the read-only spell');
    }
  } finally {
    umount(mnt);
    fs.rmSync(root, { recursive: true, force: true });
  }
});

// --- permissions and paths ------------------------------------------------------------

t.test('permissions whatever the umask; planted symlinks; bad storage paths', async (t) => {
  const root = tmpdir('perm');
  let cases = 0;
  for (const umask of ['000', '022', '077', '777']) {
    const dir = path.join(root, `u${umask}`, 'store');
    fs.mkdirSync(path.dirname(dir));
    const sh = ['/bin/sh', '-c', `umask ${umask}; exec "$0" "$@"`];
    for (const args of [['init'], ['create', 'abcd'], ['create', 'abce']]) {
      const r = await run(dir, args, { prefix: sh, env: { NFSDCLTRACK_COMPACT_BYTES: '64' } });
      t.equal(r.status, 0, `umask ${umask}: ${args.join(' ')}`);
    }
    cases++;
    t.equal(fs.statSync(dir).mode & 0o777, 0o700, `umask ${umask}: storage dir is 0700`);
    for (const f of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, f));
      t.equal(st.mode & 0o777, st.isDirectory() ? 0o700 : 0o600, `umask ${umask}: ${f} is ${st.isDirectory() ? '0700' : '0600'}`);
    }
  }

  // Symlinks planted in place of each store file lead nowhere.
  const outside = path.join(root, 'outside');
  fs.mkdirSync(outside);
  const base = path.join(root, 'symbase');
  await buildStore(base, [{ id: 'abcd', time: RECENT, session: false }]);
  const names = ['clients.snap', 'clients.journal', 'clients.lock', 'clients.snap.tmp'];
  const results = await pool(names, 4, async (name) => {
    const dir = path.join(root, `sym-${name}`);
    copyDir(base, dir);
    const victimFile = path.join(outside, `${name}.victim`);
    const victimDir = path.join(outside, `${name}.victimdir`);
    // A plausible target: a copy of the real file, so that following it would "work".
    const real = path.join(dir, name);
    fs.writeFileSync(victimFile, fs.existsSync(real) && fs.statSync(real).isFile() ? fs.readFileSync(real) : 'victim\n');
    fs.mkdirSync(victimDir);
    const old = new Date(Date.now() - 3600_000);
    fs.utimesSync(victimFile, old, old);
    fs.utimesSync(victimDir, old, old);
    const before = fs.readFileSync(victimFile);
    const mtime = fs.statSync(victimFile).mtimeMs;
    fs.rmSync(real, { recursive: true, force: true });
    fs.symlinkSync(name === 'clients.lock' ? victimDir : victimFile, real);
    const out: { args: string[]; status: number | null; stack: boolean }[] = [];
    for (const args of [['create', 'ab01'], ['check', 'abcd'], ['create', 'ab02'], ['gracedone', '1']]) {
      const r = await run(dir, args, { env: { NFSDCLTRACK_COMPACT_BYTES: '64' } });
      out.push({ args, status: r.status, stack: hasStackTrace(r.stderr) });
    }
    const victimOk =
      fs.readFileSync(victimFile).equals(before) &&
      fs.statSync(victimFile).mtimeMs === mtime &&
      fs.existsSync(victimDir) &&
      fs.readdirSync(victimDir).length === 0;
    return { name, out, victimOk };
  });
  for (const { name, out, victimOk } of results) {
    cases++;
    t.ok(victimOk, `a symlink planted as ${name} was not followed: its target is untouched`);
    for (const o of out) {
      t.ok(o.status !== null && (o.status === 0 || o.status === 135 || o.status === 255), `${name}: ${o.args.join(' ')} -> ${o.status}`);
      t.notOk(o.stack, `${name}: ${o.args[0]}: no stack trace`);
    }
  }

  // Storage dir paths that cannot work fail cleanly, with the store's errno.
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, '');
  const bad = [
    { dir: file, why: 'a regular file' },
    { dir: path.join(file, 'sub'), why: 'a path through a file' },
    { dir: path.join(root, 'x'.repeat(300)), why: 'a component longer than NAME_MAX' },
    { dir: path.join(root, ...Array.from({ length: 40 }, () => 'y'.repeat(120))), why: 'a path longer than PATH_MAX' },
  ];
  for (const b of bad) {
    for (const args of [['init'], ['create', 'abcd'], ['check', 'abcd'], ['remove', 'abcd'], ['gracedone', '1']]) {
      cases++;
      const r = await run(b.dir, args);
      const okStatus = args[0] === 'init' ? r.status === 243 || OPEN_FAILURES.has(r.status ?? -1) : OPEN_FAILURES.has(r.status ?? -1) || r.status === 255 || r.status === 135;
      t.ok(okStatus, `${b.why}: ${args[0]} fails cleanly with ${r.status}`);
      t.notOk(hasStackTrace(r.stderr), `${b.why}: ${args[0]}: no stack trace`);
    }
  }
  t.comment(`permissions and paths: ${cases} cases`);
  fs.rmSync(root, { recursive: true, force: true });
});
