// Fault injection, part 4: a slow disk (issue 14). A system call that blocks
// for seconds (strace delaying fdatasync, or a crash point that blocks the
// thread as such a call does: no timer can fire), locks robbed from a
// holder, inode numbers handed back, clocks stepped back, a nearly full
// disk, FIFOs planted as store files, and the compaction threshold on a
// store of long ids.
import t from 'tap';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ownerName, parseOwnerName, startTimeOf, type LockOwner } from '../lib/store/lock';
import { compactThreshold } from '../lib/store/policy';
import { Store } from '../lib/store/store';
import { baseRecords, buildStore, DOCUMENTED, hasStackTrace, nowSec, proven, readState, run, sleep, tmpdir, until } from './lib/faults';

const RECENT = nowSec() - 100;
const SESSION = { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' };
const lockOf = (dir: string) => path.join(dir, 'clients.lock');
const ownerFileOf = (dir: string) => fs.readdirSync(lockOf(dir)).find((n) => n.startsWith('owner.'));

const journalHas = (dir: string, id: string) => () => fs.readFileSync(path.join(dir, 'clients.journal'), 'latin1').includes(` ${id} `);

t.test('a holder blocked 6 s in fdatasync keeps its lock; the waiter waits for it', { skip: fs.existsSync('/usr/bin/strace') ? false : 'no strace' }, async (t) => {
  const root = tmpdir('slowsync');
  const dir = path.join(root, 'store');
  await buildStore(dir, baseRecords());
  const strace = ['/usr/bin/strace', '-f', '-qq', '-o', '/dev/null', '-e', 'trace=fdatasync', '-e', 'inject=fdatasync:delay_exit=6000000:when=1'];
  const holder = run(dir, ['create', '1a01'], { prefix: strace });
  await until(journalHas(dir, '1a01'));
  const waiter = run(dir, ['create', '1a02'], { env: SESSION });
  const [h, w] = await Promise.all([holder, waiter]);
  t.equal(h.status, 0, `the blocked holder acknowledges its write (${h.ms} ms): ${h.stderr.trim()}`);
  t.equal(w.status, 0, `the waiter gets the lock after it (${w.ms} ms): ${w.stderr.trim()}`);
  t.ok(w.end >= h.end - 50, 'and not before the holder was done');
  t.ok(proven(dir, '1a01') && proven(dir, '1a02'), 'both records are there');
  t.ok(readState(dir).healthy, 'the store is sound');
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('writers queued behind each other: a waiter waits while the lock changes hands, past waitMs in all', async (t) => {
  // A reclaim storm under load: each holder keeps the lock 3.5 s (blocked,
  // as in a slow fdatasync), four in a row, so the last of them waits ~14 s,
  // more than the 10 s a single holder may keep them. Before, they gave up
  // at 10 s in all: create exited 135 and the client's record was lost.
  const root = tmpdir('relay');
  const dir = path.join(root, 'store');
  await buildStore(dir, baseRecords());
  const ids = ['6a01', '6a02', '6a03', '6a04'];
  const runs = [];
  for (const id of ids) {
    runs.push(run(dir, ['create', id], { env: { ...SESSION, NFSDCLTRACK_CRASH_AT: 'lock-taken:block:3500' } }));
    await sleep(150);
  }
  const last = run(dir, ['create', '6a05'], { env: SESSION });
  const rs = await Promise.all([...runs, last]);
  rs.forEach((r, i) => t.equal(r.status, 0, `create ${i + 1} of 5 acknowledged after ${r.ms} ms: ${r.stderr.trim()}`));
  const longest = Math.max(...rs.map((r) => r.ms));
  t.ok(longest > 10_000, `the longest waiter waited past 10 s in all (${longest} ms)`);
  t.ok([...ids, '6a05'].every((id) => proven(dir, id)), 'every record is there');
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('a gracedone robbed while writing its snapshot renames nothing', async (t) => {
  // The lock is taken from the blocked holder as a waiter on another node
  // would (by the mtime heartbeat, which a blocked process cannot renew).
  const root = tmpdir('robbed');
  const dir = path.join(root, 'store');
  await buildStore(dir, [...baseRecords(), { id: 'dd', time: RECENT, session: true }]);
  const gd = run(dir, ['gracedone', String(RECENT - 10)], { env: { NFSDCLTRACK_CRASH_AT: 'snapshot-temp-written:block:3000' } });
  await until(() => fs.existsSync(path.join(dir, 'clients.snap.tmp')));
  await sleep(300);
  fs.rmSync(lockOf(dir), { recursive: true });
  t.equal((await run(dir, ['create', 'bb'], { env: SESSION })).status, 0, 'meanwhile bb is created');
  t.equal((await run(dir, ['remove', 'dd'])).status, 0, 'and dd removed');
  const g = await gd;
  t.equal(g.status, 135, `the robbed gracedone fails: ${g.stderr.trim()}`);
  t.match(g.stderr, /lost the lock/, 'saying why');
  t.ok(proven(dir, 'bb'), 'bb is still granted');
  t.notOk(proven(dir, 'dd'), 'dd is still refused');
  t.ok(readState(dir).healthy, 'the store is sound');
  t.notOk(fs.existsSync(path.join(dir, 'clients.snap.tmp')), 'its temporary snapshot is gone');
  fs.rmSync(root, { recursive: true, force: true });
});

/** A small ext4 file system on a loop device (it hands a freed inode number back at once); null when it cannot be made. */
function ext4(root: string): { mnt: string; done: () => void } | string {
  const img = path.join(root, 'ext4.img');
  const mnt = path.join(root, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 16 << 20);
  const mk = spawnSync('mkfs.ext4', ['-q', '-F', img], { encoding: 'utf8' });
  if (mk.status !== 0) return `mkfs.ext4: ${mk.stderr || mk.error?.message}`;
  const m = spawnSync('mount', ['-o', 'loop', img, mnt], { encoding: 'utf8' });
  if (m.status !== 0) return `mount: ${m.stderr || m.error?.message}`;
  return { mnt, done: () => spawnSync('umount', ['-l', mnt]) };
}

t.test('a robbed holder is not fooled by its inode number coming back (ext4)', async (t) => {
  const root = tmpdir('inode');
  const fsys = ext4(root);
  if (typeof fsys === 'string') {
    t.comment(`SKIP: needs a loop-mounted ext4 (root): ${fsys}`);
    t.ok(true, 'SKIP', { skip: fsys });
    return;
  }
  try {
    const dir = path.join(fsys.mnt, 'store');
    await buildStore(dir, baseRecords());
    const holder = run(dir, ['create', '3a01'], { env: { NFSDCLTRACK_CRASH_AT: 'lock-taken:block:2500' } });
    await until(() => fs.existsSync(lockOf(dir)));
    await sleep(200);
    const ino = fs.statSync(lockOf(dir)).ino;
    // Another node's holder takes the lock over: a new directory, no owner file of ours.
    fs.rmSync(lockOf(dir), { recursive: true });
    fs.mkdirSync(lockOf(dir));
    t.comment(`the new lock directory's inode: ${fs.statSync(lockOf(dir)).ino}, the robbed one's: ${ino}`);
    const h = await holder;
    t.equal(h.status, 135, `the robbed holder does not acknowledge: ${h.stderr.trim()}`);
    t.notOk(proven(dir, '3a01'), 'nor write');
    t.ok(fs.existsSync(lockOf(dir)), "and leaves the new holder's lock alone");
    t.ok(readState(dir).healthy, 'the store is sound');
  } finally {
    fsys.done();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

t.test('a write whose journal is damaged meanwhile does not compact the damaged store away', async (t) => {
  const root = tmpdir('dmgcompact');
  const dir = path.join(root, 'store');
  await buildStore(dir, baseRecords());
  await new Store({ dir }).compact();
  await buildStore(dir, [{ id: '4a00', time: RECENT, session: true }, { id: '4a02', time: RECENT, session: true }]);
  const snap = fs.readFileSync(path.join(dir, 'clients.snap'));
  const w = run(dir, ['create', '4a01'], { env: { ...SESSION, NFSDCLTRACK_COMPACT_BYTES: '64', NFSDCLTRACK_CRASH_AT: 'journal-written:block:1500' } });
  await until(journalHas(dir, '4a01'));
  // The disk damages the first entry meanwhile (one checksum digit).
  const jp = path.join(dir, 'clients.journal');
  const lines = fs.readFileSync(jp, 'latin1').split('\n');
  lines[1] = lines[1].slice(0, -1) + (lines[1].endsWith('0') ? '1' : '0');
  const damaged = lines.join('\n');
  fs.writeFileSync(jp, damaged, 'latin1');
  const r = await w;
  t.equal(r.status, 0, `the write is acknowledged: ${r.stderr.trim()}`);
  t.ok(fs.readFileSync(path.join(dir, 'clients.snap')).equals(snap), 'the snapshot is not replaced');
  t.ok(fs.readFileSync(jp, 'latin1').startsWith(damaged), 'the damaged journal is kept');
  t.notOk(readState(dir).healthy, 'the store says it is damaged');
  t.ok(proven(dir, '4a01'), 'what was written after the damage is proven');
  fs.rmSync(root, { recursive: true, force: true });
});

t.test("a dead holder's lock dated in the future is taken over; a live holder's is not", async (t) => {
  const root = tmpdir('future');
  const future = Date.now() / 1000 + 3600;
  const selfStart = startTimeOf(fs.readFileSync('/proc/self/stat', 'latin1'))!;
  const cases: { name: string; owner: ((o: LockOwner) => LockOwner) | null | 'none'; want: number }[] = [
    { name: 'no owner file (a proper-lockfile lock), dated an hour ahead', owner: 'none', want: 0 },
    { name: 'a killed holder, dated an hour ahead', owner: null, want: 0 },
    { name: 'a holder of another boot, dated an hour ahead', owner: (o) => ({ ...o, host: `00000000-0000-0000-0000-000000000000:${o.host.split(':')[1]}` }), want: 0 },
    { name: 'a live holder (this test), its lock not refreshed for a minute', owner: (o) => ({ ...o, pid: process.pid, start: selfStart }), want: 135 },
  ];
  const results = await Promise.all(
    cases.map(async (c, i) => {
      const dir = path.join(root, `s${i}`);
      await buildStore(dir, baseRecords());
      const killed = await run(dir, ['create', '5a00'], { env: { NFSDCLTRACK_CRASH_AT: 'lock-taken' } });
      t.equal(killed.signal, 'SIGKILL', `${c.name}: holder killed with the lock`);
      const file = ownerFileOf(dir);
      if (file && c.owner === 'none') fs.unlinkSync(path.join(lockOf(dir), file));
      else if (file && typeof c.owner === 'function') fs.renameSync(path.join(lockOf(dir), file), path.join(lockOf(dir), ownerName(c.owner(parseOwnerName(file)!))));
      const when = c.want === 0 ? future : Date.now() / 1000 - 60;
      fs.utimesSync(lockOf(dir), when, when);
      return run(dir, ['create', '5a01'], { env: SESSION });
    }),
  );
  results.forEach((r, i) => {
    const c = cases[i];
    t.equal(r.status, c.want, `${c.name}: status ${c.want} (${r.ms} ms): ${r.stderr.trim()}`);
    if (c.want === 0) t.ok(r.ms < 3000, `${c.name}: taken over at once (${r.ms} ms)`);
    else t.ok(r.ms >= 9500, `${c.name}: the waiter gave up after the bounded wait (${r.ms} ms)`);
  });
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('FIFOs and directories planted as store files: a clear error at once, the lock released', async (t) => {
  const root = tmpdir('fifo');
  const cases = ['clients.journal', 'clients.snap'].flatMap((file) =>
    (['fifo', 'dir'] as const).flatMap((kind) => [
      { file, kind, args: ['create', '7a01'], want: 135 },
      { file, kind, args: ['check', '7a02'], want: 255, env: SESSION },
    ]),
  );
  const results = await Promise.all(
    cases.map(async (c, i) => {
      const dir = path.join(root, `s${i}`);
      await buildStore(dir, [{ id: '7a02', time: RECENT, session: true }]);
      const p = path.join(dir, c.file);
      fs.unlinkSync(p);
      if (c.kind === 'dir') fs.mkdirSync(p);
      else spawnSync('mkfifo', [p]);
      return { dir, r: await run(dir, c.args, { env: c.env, timeoutMs: 8000 }) };
    }),
  );
  results.forEach(({ dir, r }, i) => {
    const c = cases[i];
    const what = `${c.args[0]} with a ${c.kind} as ${c.file}`;
    t.equal(r.status, c.want, `${what}: status ${c.want} (${r.ms} ms): ${r.stderr.trim()}`);
    t.ok(DOCUMENTED.has(r.status ?? -1) && r.ms < 3000, `${what}: a documented status, at once`);
    t.match(r.stderr, /not a regular file/, `${what}: says what is wrong`);
    t.notOk(hasStackTrace(r.stderr), `${what}: no stack trace`);
    t.notOk(fs.existsSync(lockOf(dir)), `${what}: no lock left behind`);
  });
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('compaction follows the snapshot size: a store of long ids is not rewritten every 16th write', async (t) => {
  t.equal(compactThreshold(32768, 1000, 10), 32768, 'a small store compacts at the floor');
  t.equal(Math.round(compactThreshold(32768, 200 << 20, 100_000) / 1024), 324, '100,000 clients of 1 KB ids: at ~320 KiB');
  const root = tmpdir('threshold');
  const dir = path.join(root, 'store');
  fs.mkdirSync(dir, { mode: 0o700 });
  const long = (i: number) => i.toString(16).padStart(8, '0') + 'cd'.repeat(1020);
  const N = 8000;
  await new Store({ dir }).replaceAll(function* () {
    for (let i = 0; i < N; i++) yield { id: long(2 * i), time: RECENT, session: true };
  });
  const gen = () => fs.readFileSync(path.join(dir, 'clients.snap'), 'latin1').slice(0, 120).match(/gen=(\d+)/)![1];
  const g0 = gen();
  const snapBytes = fs.statSync(path.join(dir, 'clients.snap')).size;
  const at = compactThreshold(32 * 1024, snapBytes, N);
  const failed: number[] = [];
  let i = 0;
  const create = async () => {
    const r = await run(dir, ['create', long(2 * i + 1)], { env: SESSION });
    if (r.status !== 0) failed.push(r.status ?? -1);
    i++;
  };
  while (fs.statSync(path.join(dir, 'clients.journal')).size < 48 * 1024 && i < 40) await create();
  t.equal(gen(), g0, `past 48 KiB of journal (${i} writes of a 1 KB id), a ${Math.round(snapBytes / 1048576)} MiB snapshot is not yet rewritten (threshold ${Math.round(at / 1024)} KiB)`);
  while (gen() === g0 && i < 200) await create();
  t.not(gen(), g0, `it is rewritten once the journal passes the threshold (after ${i} writes)`);
  t.same(failed, [], 'every create succeeded');
  t.equal(readState(dir).records.size, N + i, 'every record is there');
  fs.rmSync(root, { recursive: true, force: true });
});
