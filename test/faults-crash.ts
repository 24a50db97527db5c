// Fault injection, part 1: processes killed at every named step and at random
// instants, and many processes contending for one store (issue 3).
import t from 'tap';
import * as fs from 'fs';
import * as path from 'path';
import { CRASH_POINTS } from '../lib/crashpoint';
import { encodeJournalEntry, encodeJournalHeader, type RecState } from '../lib/store/format';
import { baseRecords, rng, buildStore, copyDir, tracedPoints, hasStackTrace, nowSec, pool, proven, readState, run, STALE_MS, tmpdir, until } from './lib/faults';

const OLD = 1000;
const RECENT = nowSec() - 100;
const BASE = baseRecords();
/** Bound on the delay a killed lock holder may cause: staleMs plus polling and a loaded 2-CPU box. */
const LOCK_BOUND_MS = STALE_MS + 3000;

interface Cmd {
  name: string;
  args: string[];
  env: (c: CaseDir) => Record<string, string>;
  /** Ids the command may change, and the state each has if it completed (null: absent). */
  after: Record<string, (s: RecState | null) => boolean>;
  fresh?: boolean;
  /** Damage to leave in the copied store first (what an earlier crash leaves). */
  prep?: (store: string) => void | Promise<void>;
}
interface CaseDir {
  root: string;
  store: string;
  recdir: string;
  endGrace: string;
}

/** A case's directory: the command's store (a copy of the base one unless it starts fresh), a legacy recovery dir and an end-grace file. */
async function caseDir(root: string, cmd: Cmd, base: string): Promise<CaseDir> {
  const c: CaseDir = { root, store: path.join(root, 'store'), recdir: path.join(root, 'recdir'), endGrace: path.join(root, 'end_grace') };
  if (!cmd.fresh) copyDir(path.join(base, 'store'), c.store);
  await cmd.prep?.(c.store);
  fs.mkdirSync(c.recdir);
  fs.writeFileSync(c.endGrace, '');
  return c;
}

const present = (session: boolean) => (s: RecState | null) => s !== null && s.session === session;
const absent = (s: RecState | null) => s === null;

const COMMANDS: Cmd[] = [
  {
    name: 'init',
    args: ['init'],
    env: (c) => ({ NFSDCLTRACK_GRACE_START: String(nowSec()), NFSDCLTRACK_END_GRACE_FILE: c.endGrace }),
    after: {},
    fresh: true,
  },
  { name: 'create v4.0', args: ['create', 'c0c0'], env: () => ({}), after: { c0c0: present(false) } },
  {
    name: 'create v4.1',
    args: ['create', 'c1c1'],
    env: (c) => ({ NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y', NFSDCLTRACK_GRACE_START: String(OLD + 1), NFSDCLTRACK_END_GRACE_FILE: c.endGrace }),
    after: { c1c1: present(true) },
  },
  { name: 'remove', args: ['remove', 'b1b1'], env: () => ({}), after: { b1b1: absent } },
  { name: 'check v4.0', args: ['check', 'a1a1'], env: () => ({}), after: { a1a1: (s) => s !== null && !s.session && s.time > OLD } },
  {
    name: 'check legacy',
    args: ['check', 'd0d0'],
    env: (c) => ({ NFSDCLTRACK_LEGACY_RECDIR: c.recdir }),
    after: { d0d0: present(false) },
  },
  { name: 'gracedone', args: ['gracedone', String(OLD + 1)], env: () => ({}), after: { a1a1: absent, a2a2: absent } },
  {
    name: 'create after a torn append',
    args: ['create', 'c2c2'],
    env: () => ({}),
    after: { c2c2: present(false) },
    prep: (dir) => fs.appendFileSync(path.join(dir, 'clients.journal'), '2 3 set c3c3 12'),
  },
  {
    name: 'create after a cut-short compaction',
    args: ['create', 'c4c4'],
    env: () => ({}),
    after: { c4c4: present(false) },
    // Compaction to gen 3 wrote and renamed its snapshot, then died before
    // starting the gen-3 journal: the gen-2 journal left is stale.
    prep: async (dir) => {
      const { Store } = await import('../lib/store/store');
      await new Store({ dir }).compact();
      const entry = { gen: 2, seq: 1, op: 'set' as const, id: 'b1b1', state: { time: RECENT, session: false }, prev: null };
      fs.writeFileSync(path.join(dir, 'clients.journal'), encodeJournalHeader(2) + encodeJournalEntry(entry));
    },
  },
  {
    name: 'create+compaction',
    args: ['create', 'e0e0'],
    env: () => ({ NFSDCLTRACK_COMPACT_BYTES: '64' }),
    after: { e0e0: present(false) },
  },
];

const same = (a: RecState | null | undefined, b: RecState | null | undefined) =>
  (a ?? null) === null ? (b ?? null) === null : !!b && a!.time === b.time && a!.session === b.session;

t.test('crash matrix: every command killed at every crash point', async (t) => {
  const base = tmpdir('base');
  await buildStore(path.join(base, 'store'), BASE.slice(0, 2));
  // Half the records in the snapshot, half in the journal.
  const { Store } = await import('../lib/store/store');
  await new Store({ dir: path.join(base, 'store') }).compact();
  await buildStore(path.join(base, 'store'), BASE.slice(2));
  const baseState = readState(path.join(base, 'store'));
  t.ok(baseState.healthy, 'base store is healthy');
  t.equal(baseState.records.size, 4);

  // The points each command passes, from a traced run of it.
  const reached = await pool(COMMANDS, 3, async (cmd, i) => {
    const root = tmpdir(`trace${i}`);
    const c = await caseDir(root, cmd, base);
    const r = await run(c.store, cmd.args, { env: { ...cmd.env(c), NFSDCLTRACK_CRASH_AT: 'trace' } });
    fs.rmSync(root, { recursive: true, force: true });
    return new Set(tracedPoints(r));
  });
  const all = new Set(reached.flatMap((s) => [...s]));
  // The daemon's own points (cld-*) are the daemon's crash matrix's, in test/cld-daemon.ts.
  for (const p of CRASH_POINTS) if (!p.startsWith('cld-') && !all.has(p)) t.fail(`crash point ${p} is never reached`);
  const cases = COMMANDS.flatMap((cmd, i) => CRASH_POINTS.filter((p) => reached[i].has(p)).map((point) => ({ cmd, point })));
  let killed = 0;
  let lockWaits: number[] = [];
  let maxDelay = 0;
  const failures: string[] = [];
  const t0 = Date.now();
  await pool(cases, 10, async ({ cmd, point }, i) => {
    const root = tmpdir(`crash${i}`);
    const c = await caseDir(root, cmd, base);
    const label = `${cmd.name} @ ${point}`;
    const fail = (m: string) => failures.push(`${label}: ${m}`);
    const env = cmd.env(c);
    const r = await run(c.store, cmd.args, { env: { ...env, NFSDCLTRACK_CRASH_AT: point } });
    if (r.signal === 'SIGKILL') killed++;
    else if (r.status !== 0) fail(`not killed, status ${r.status}: ${r.stderr}`);
    if (hasStackTrace(r.stderr)) fail(`stack trace: ${r.stderr}`);

    // The store reads back healthy, with every acknowledged record and the
    // interrupted change wholly there or wholly absent.
    const checkState = (when: string): Map<string, RecState> | null => {
      if (cmd.fresh) {
        if (!fs.existsSync(c.store)) return new Map();
        const s = readState(c.store);
        if (!s.healthy) fail(`${when}: store unhealthy: ${s.problems.join('; ')}`);
        return s.records;
      }
      const s = readState(c.store);
      if (!s.healthy) {
        fail(`${when}: store unhealthy: ${s.problems.join('; ')}`);
        return null;
      }
      const changed = Object.keys(cmd.after);
      const done = changed.map((id) => cmd.after[id](s.records.get(id) ?? null));
      const untouched = changed.map((id) => same(s.records.get(id), baseState.records.get(id)));
      if (!(done.every(Boolean) || untouched.every(Boolean))) fail(`${when}: change half-done: ${JSON.stringify([...s.records])}`);
      for (const [id, rec] of baseState.records) {
        if (changed.includes(id)) continue;
        if (!same(s.records.get(id), rec)) fail(`${when}: acknowledged record ${id} lost or changed`);
      }
      if (r.status === 0 && !done.every(Boolean)) fail(`${when}: acknowledged change missing`);
      return s.records;
    };
    const mid = checkState('after the crash');

    // The next writer gets through within the bound.
    const next = await run(c.store, ['create', 'f0f0'], { env: {} });
    const delay = next.end - r.end;
    maxDelay = Math.max(maxDelay, delay);
    if (next.ms > 1000) lockWaits.push(next.ms);
    if (next.status !== 0) fail(`next create: status ${next.status}: ${next.stderr}`);
    if (delay > LOCK_BOUND_MS) fail(`next writer delayed ${delay} ms`);
    const after = checkState('after the next writer');
    if (mid && after) {
      for (const id of Object.keys(cmd.after)) if (!same(mid.get(id), after.get(id))) fail(`next writer changed the outcome for ${id}`);
      if (!after.get('f0f0')) fail('next create not recorded');
    }
    // The same command again, now uninterrupted, works.
    const again = await run(c.store, cmd.args, { env });
    if (again.status !== 0) fail(`rerun: status ${again.status}: ${again.stderr}`);
    if (!cmd.fresh) {
      const s = readState(c.store);
      for (const id of Object.keys(cmd.after)) if (!cmd.after[id](s.records.get(id) ?? null)) fail(`rerun did not apply to ${id}`);
      if (!proven(c.store, 'b2b2')) fail('b2b2 not provable');
    }
    fs.rmSync(root, { recursive: true, force: true });
  });
  t.same(failures, [], 'no crash point loses or half-applies anything');
  t.equal(killed, cases.length, `${killed} of ${cases.length} runs were killed at their crash point`);
  t.comment(
    `crash matrix: ${cases.length} cases (${COMMANDS.length} commands x the points each passes, of ${CRASH_POINTS.length}), ${killed} killed, ` +
      `${lockWaits.length} next writers waited for a dead lock (max delay after the kill ${maxDelay} ms, bound ${LOCK_BOUND_MS} ms), ${Date.now() - t0} ms`,
  );
  fs.rmSync(base, { recursive: true, force: true });
});

// --- random kills during mixed traffic ---------------------------------------

type Op = { kind: 'create'; session: boolean } | { kind: 'remove' } | { kind: 'check'; session: boolean } | { kind: 'gracedone' };
/** A client's state as far as the oracle cares: absent, or present with has_session. */
type Shape = 'absent' | 'v40' | 'v41';
const shapeOf = (s: RecState | null | undefined): Shape => (!s ? 'absent' : s.session ? 'v41' : 'v40');


t.test('random SIGKILLs during mixed traffic, checked against an oracle', async (t) => {
  const seed = Number(process.env.NFSDCLTRACK_FAULTS_SEED) || Date.now() % 100000;
  const rand = rng(seed);
  const root = tmpdir('random');
  const dir = path.join(root, 'store');
  // Old records only gracedone touches: its outcome is the same in any order.
  const graced = ['9a01', '9a02', '9a03'];
  await buildStore(dir, graced.map((id, i) => ({ id, time: OLD, session: i % 2 === 0 })));
  const env = { NFSDCLTRACK_COMPACT_BYTES: '1500' };
  const possible = new Map<string, Set<Shape>>(graced.map((id, i) => [id, new Set<Shape>([i % 2 === 0 ? 'v41' : 'v40'])]));
  const WORKERS = 4;
  const OPS = 22;
  let kills = 0;
  let runs = 0;
  const bad: string[] = [];
  const apply = (op: Op, s: Shape): Shape =>
    op.kind === 'create' ? (op.session ? 'v41' : 'v40') : op.kind === 'remove' ? 'absent' : s;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const ids = [0, 1, 2].map((k) => `${w}${k}e0`);
      for (const id of ids) possible.set(id, new Set(['absent']));
      for (let n = 0; n < OPS; n++) {
        const roll = rand();
        const op: Op =
          w === 0 && roll < 0.08
            ? { kind: 'gracedone' }
            : roll < 0.4
              ? { kind: 'create', session: rand() < 0.5 }
              : roll < 0.6
                ? { kind: 'remove' }
                : { kind: 'check', session: rand() < 0.3 };
        const id = ids[Math.floor(rand() * ids.length)];
        const killAfterMs = rand() < 0.45 ? 15 + Math.floor(rand() * 130) : undefined;
        const args = op.kind === 'gracedone' ? ['gracedone', String(OLD + 1)] : [op.kind, id];
        const r = await run(dir, args, {
          env: { ...env, ...(op.kind === 'create' || op.kind === 'check' ? { NFSDCLTRACK_CLIENT_HAS_SESSION: op.session ? 'Y' : 'N' } : {}) },
          killAfterMs,
        });
        runs++;
        if (hasStackTrace(r.stderr)) bad.push(`${args.join(' ')}: stack trace`);
        const killed = r.signal === 'SIGKILL';
        if (killed) kills++;
        if (op.kind === 'gracedone') {
          for (const g of graced) {
            const set = possible.get(g)!;
            if (killed) set.add('absent');
            else if (r.status === 0) possible.set(g, new Set(['absent']));
            else bad.push(`gracedone: status ${r.status}: ${r.stderr}`);
          }
          continue;
        }
        const set = possible.get(id)!;
        if (op.kind === 'check') {
          if (killed) continue;
          if (r.status === 0) {
            if (!set.has('v40') && !set.has('v41')) bad.push(`check ${id} granted, but it cannot be present (${[...set]})`);
            set.delete('absent');
          } else if (r.status === 255) {
            if (!set.has('absent')) bad.push(`check ${id} refused, but it must be present (${[...set]}): ${r.stderr}`);
            possible.set(id, new Set(['absent']));
          } else bad.push(`check ${id}: status ${r.status}`);
          continue;
        }
        const next = new Set([...set].map((s) => apply(op, s)));
        if (killed) for (const s of next) set.add(s);
        else if (r.status === 0) possible.set(id, next);
        else bad.push(`${args.join(' ')}: status ${r.status}: ${r.stderr}`);
      }
    }),
  );
  const state = readState(dir);
  t.ok(state.healthy, `store is healthy after ${kills} kills (${state.problems.join('; ')})`);
  for (const [id, set] of possible) {
    const got = shapeOf(state.records.get(id));
    if (!set.has(got)) bad.push(`${id}: final state ${got}, oracle allows ${[...set]}`);
  }
  t.same(bad, [], `every outcome is one the oracle allows (seed ${seed})`);
  t.comment(`random kills: ${runs} processes, ${kills} SIGKILLed at random instants, ${possible.size} clients, seed ${seed}, ${Date.now() - t0} ms`);
  fs.rmSync(root, { recursive: true, force: true });
});

// --- contention ---------------------------------------------------------------

t.test('16 processes hammering one store, and the lock bounds', async (t) => {
  const root = tmpdir('contend');
  const dir = path.join(root, 'store');
  const oldIds = ['8a01', '8a02'];
  const checked = ['8b01', '8b02'];
  const removedShared = '8c01';
  const createdShared = '8d01';
  await buildStore(dir, [
    ...oldIds.map((id) => ({ id, time: OLD, session: false })),
    ...checked.map((id) => ({ id, time: RECENT, session: false })),
    { id: removedShared, time: RECENT, session: true },
  ]);
  // A slow but live writer (blocked longer than staleMs while holding the
  // lock, as in a system call: its heartbeat timer cannot run) in a store of
  // its own, and a waiter that must give up.
  const slowDir = path.join(root, 'slow');
  await buildStore(slowDir, [{ id: '7a03', time: OLD, session: false }]);
  const legacyDir = path.join(root, 'legacy-7a04');
  fs.mkdirSync(legacyDir);
  const slow = run(slowDir, ['create', '7a01'], { env: { NFSDCLTRACK_CRASH_AT: 'lock-taken:block:12000' } });
  // Until it holds the lock (its owner file is in): a loaded machine can take longer than any fixed pause to start it.
  await until(() => fs.existsSync(path.join(slowDir, 'clients.lock')) && fs.readdirSync(path.join(slowDir, 'clients.lock')).length > 0);
  const waiterStart = Date.now();
  const waiter = run(slowDir, ['create', '7a02'], { env: {} });
  // v4.0 checks need the lock too (to refresh the time, or to insert a legacy
  // client): each must answer after ONE bounded wait, never a second.
  const knownCheck = run(slowDir, ['check', '7a03'], { env: {} });
  const legacyCheck = run(slowDir, ['check', '7a04'], { env: { NFSDCLTRACK_LEGACY_RECDIR: legacyDir } });

  // Start with a lock left by a killed holder: all 16 then race to take it over.
  const dead = await run(dir, ['create', '8e01'], { env: { NFSDCLTRACK_CRASH_AT: 'lock-taken' } });
  t.equal(dead.signal, 'SIGKILL', 'a holder died with the lock');
  const P = 16;
  const bad: string[] = [];
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: P }, async (_, w) => {
      const own = [`${(w + 16).toString(16)}01`, `${(w + 16).toString(16)}02`];
      const ops: string[][] = [
        ['create', own[0]],
        ['create', createdShared],
        ['check', checked[w % 2]],
        ['create', own[1]],
        ['remove', removedShared],
        ['remove', own[1]],
        ...(w === 5 ? [['gracedone', String(OLD + 1)]] : []),
      ];
      const statuses: number[] = [];
      for (const args of ops) {
        const r = await run(dir, args, { env: args[1] === createdShared ? { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } : {} });
        if (r.status !== 0) bad.push(`${args.join(' ')}: status ${r.status}: ${r.stderr}`);
        statuses.push(r.status ?? -1);
      }
      return { own, statuses };
    }),
  );
  const ms = Date.now() - t0;
  const state = readState(dir);
  t.ok(state.healthy, 'store is healthy');
  // The serial order the exit statuses imply (every op acknowledged):
  const expected = new Map<string, Shape>([
    [checked[0], 'v40'],
    [checked[1], 'v40'],
    [createdShared, 'v41'],
  ]);
  for (const { own } of results) expected.set(own[0], 'v40');
  const got = new Map([...state.records].map(([id, r]) => [id, shapeOf(r)] as const));
  t.same(Object.fromEntries(got), Object.fromEntries(expected), 'final state equals the serial order');
  for (const id of checked) t.ok(state.records.get(id)!.time >= RECENT, `${id} time kept or refreshed`);
  // No duplicates: a compacted snapshot lists each client once, and the
  // journal's sequence numbers ran without a gap or a repeat (healthy).
  const { Store } = await import('../lib/store/store');
  t.ok(await new Store({ dir }).compact(), 'compaction succeeds');
  const lines = fs.readFileSync(path.join(dir, 'clients.snap'), 'latin1').split('\n').filter((l) => /^[0-9a-f-]/.test(l));
  t.equal(new Set(lines.map((l) => l.split(' ')[0])).size, lines.length, 'no duplicate records');
  t.equal(lines.length, expected.size, 'no extra records');
  t.same(bad, [], 'every contended op succeeded');
  t.comment(`contention: ${P} processes, ${results.reduce((n, r) => n + r.statuses.length, 0)} operations in ${ms} ms`);

  const w = await waiter;
  const waited = w.end - waiterStart;
  t.equal(w.status, 135, `a waiter behind a live, slow holder gives up with 135 (${waited} ms)`);
  t.ok(waited >= 9500 && waited <= 13500, `it waited the bounded 10 s (${waited} ms)`);
  const kc = await knownCheck;
  t.equal(kc.status, 0, `a known v4.0 client is allowed when its time cannot be refreshed (${kc.end - waiterStart} ms)`);
  t.ok(kc.end - waiterStart <= 13500, 'after one bounded wait');
  const lc = await legacyCheck;
  t.equal(lc.status, 255, `a legacy client that cannot be recorded is refused (${lc.end - waiterStart} ms)`);
  t.ok(lc.end - waiterStart <= 13500, 'after one bounded wait, not two');
  t.ok(fs.existsSync(legacyDir), 'its legacy directory is kept for a later try');
  const s = await slow;
  t.equal(s.status, 0, `the slow writer (12 s, staleMs ${STALE_MS}) kept its lock and succeeded: ${s.stderr}`);
  t.ok(readState(slowDir).records.has('7a01'), 'its record is there');
  t.notOk(readState(slowDir).records.has('7a02'), 'the waiter wrote nothing');
  fs.rmSync(root, { recursive: true, force: true });
});

t.test("the lock is proper-lockfile's: each side waits for the other", async (t) => {
  // SPEC §7 names proper-lockfile; lib/store/lock.ts takes the same lock (a
  // clients.lock directory, its mtime the heartbeat) without loading it.
  const lockfile = await import('proper-lockfile');
  const root = tmpdir('plock');
  const dir = path.join(root, 'store');
  await buildStore(dir, [{ id: '9a01', time: RECENT, session: false }]);
  const opts = { lockfilePath: path.join(dir, 'clients.lock'), realpath: false, stale: 10_000 };

  const release = await lockfile.lock(dir, opts);
  const t0 = Date.now();
  const ours = run(dir, ['create', '9a02'], { env: {} });
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(proven(dir, '9a02'), 'our writer waits while proper-lockfile holds the lock');
  await release();
  const r = await ours;
  t.equal(r.status, 0, `then it writes (${r.end - t0} ms): ${r.stderr}`);
  t.ok(r.end - t0 >= 1400, 'not before the release');
  t.ok(proven(dir, '9a02'), 'its record is there');

  // Ours holds the lock (paused just after taking it): proper-lockfile sees it taken.
  const slow = run(dir, ['create', '9a03'], { env: { NFSDCLTRACK_CRASH_AT: 'lock-taken:2000' } });
  await until(() => fs.existsSync(path.join(dir, 'clients.lock')));
  t.ok(await lockfile.check(dir, opts), 'proper-lockfile sees our lock as held');
  await t.rejects(lockfile.lock(dir, opts), { code: 'ELOCKED' }, 'and cannot take it');
  t.equal((await slow).status, 0);
  t.notOk(await lockfile.check(dir, opts), 'our writer released it');
  fs.rmSync(root, { recursive: true, force: true });
});

t.test('a holder busy in synchronous work keeps its lock fresh, and sees it taken', async (t) => {
  // A compaction blocks the event loop, so the heartbeat timer cannot fire:
  // it calls beat() itself (store.ts, every 4,096 records).
  const { acquireLock } = await import('../lib/store/lock');
  const root = tmpdir('beat');
  const lockPath = path.join(root, 'clients.lock');
  const lost: Error[] = [];
  const held = await acquireLock(root, { waitMs: 1000, staleMs: 2000, onCompromised: (e) => lost.push(e) });
  const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const old = Date.now() / 1000 - 10;
  fs.utimesSync(lockPath, old, old);
  held.beat();
  t.ok(fs.statSync(lockPath).mtimeMs < Date.now() - 5000, 'no refresh before staleMs / 3 has passed');
  block(700);
  held.beat();
  t.ok(fs.statSync(lockPath).mtimeMs > Date.now() - 1000, 'refreshed by beat() after staleMs / 3, the timer blocked');
  t.same(lost, [], 'still ours');

  // Another process took it over (a new directory in its place).
  fs.rmSync(lockPath, { recursive: true });
  fs.mkdirSync(lockPath);
  block(700);
  held.beat();
  t.equal(lost.length, 1, 'the takeover is reported once');
  t.notOk(held.stillHeld());
  held.beat();
  t.equal(lost.length, 1, 'and only once');
  held.release();
  t.ok(fs.existsSync(lockPath), "release leaves the new holder's lock alone");
  fs.rmSync(root, { recursive: true, force: true });
});
