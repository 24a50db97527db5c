// Fault injection, part 3: bad input. fast-check generates command lines,
// environment values, nfs.conf text and store file contents; the program must
// never crash, hang or print a stack trace, and must exit only with a
// documented status (SPEC §6) (issue 3).
import t from 'tap';
import fc from 'fast-check';
import * as fs from 'fs';
import * as path from 'path';
import { CRASH_POINTS } from '../lib/crashpoint';
import { encodeJournalEntry, encodeJournalHeader, encodeRecord, encodeSnapshotHeader, encodeTimeLine } from '../lib/store/format';
import { Store } from '../lib/store/store';
import { buildStore, DOCUMENTED, hasStackTrace, nowSec, OPEN_FAILURES, pool, run, tmpdir } from './lib/faults';

const SEED = Number(process.env.NFSDCLTRACK_FAULTS_SEED) || Date.now() % 1_000_000;
const root = tmpdir('input');
const store = path.join(root, 'store');
const conf = path.join(root, 'nfs.conf');
fs.writeFileSync(conf, `[nfsdcltrack]\nstoragedir = ${store}\n`);
const cwd = path.join(root, 'cwd');
fs.mkdirSync(cwd);
const okStatus = (s: number | null) => s !== null && (DOCUMENTED.has(s) || OPEN_FAILURES.has(s));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const hex = fc.oneof(
  fc.constantFrom('', 'abcd', 'ABCD', 'a1a1', '00', 'zz', 'abc', '0x10', 'b2b2'),
  fc.stringMatching(/^[0-9a-fA-F]{0,12}$/),
  fc.string({ maxLength: 8 }),
  fc.constantFrom('ab'.repeat(1024), 'ab'.repeat(1025), 'a'.repeat(2049)),
);
const safeDirs = [store, path.join(root, 'other'), path.join(root, 'missing', 'deeper'), conf, path.join(conf, 'x'), 'rel-dir', ''];
const token = fc.oneof(
  fc.constantFrom('-d', '-f', '-h', '--help', '--debug', '--foreground', '-x', '--bogus', '--', '-', '-1', '-s', '--storagedir', '--stor'),
  fc.constantFrom(...safeDirs).map((d) => `--storagedir=${d}`),
  fc.constantFrom('init', 'create', 'remove', 'check', 'gracedone', 'CHECK', 'frobnicate', ''),
  hex,
  fc.constantFrom('0', '-1', '0x7fffffffffffffff', '99999999999999999999999', ' 12', '12abc', '017', '-0x10', '1e3'),
  fc.string({ maxLength: 6, unit: 'binary' }),
);
/** A command line whose every -s names a safe place. */
const argvArb = fc
  .tuple(fc.array(token, { maxLength: 6 }), fc.constantFrom(...safeDirs))
  .map(([toks, dir]) => {
    const out: string[] = [];
    for (let i = 0; i < toks.length; i++) {
      out.push(toks[i]);
      if (toks[i] === '-s' || toks[i] === '--storagedir' || toks[i] === '--stor') out.push(dir);
    }
    return out.filter((a) => !a.includes('\0'));
  });
const envArb = fc.record(
  {
    NFSDCLTRACK_CLIENT_HAS_SESSION: fc.oneof(fc.constantFrom('Y', 'y', 'N', 'Yes', ''), fc.string({ maxLength: 4 })),
    NFSDCLTRACK_GRACE_START: fc.oneof(fc.constantFrom('0', String(nowSec()), '-1', '0x10', 'abc', '', '99999999999999999999'), fc.string({ maxLength: 6 })),
    NFSDCLTRACK_LEGACY_RECDIR: fc.constantFrom(path.join(root, 'recdir'), path.join(root, 'nope'), conf, ''),
    NFSDCLTRACK_LEGACY_TOPDIR: fc.constantFrom(path.join(root, 'topdir'), path.join(root, 'nope'), conf, ''),
    NFSDCLTRACK_COMPACT_BYTES: fc.oneof(fc.constantFrom('1', '0', '-5', 'abc', '1e9', ''), fc.string({ maxLength: 5 })),
    NFSDCLTRACK_END_GRACE_FILE: fc.constantFrom(path.join(root, 'end_grace'), path.join(root, 'nope', 'x'), root),
    NFSDCLTRACK_CRASH_AT: fc.oneof(fc.constantFrom('', 'nowhere', 'lock-taken:1', 'journal-written:x'), fc.string({ maxLength: 5 })),
  },
  { requiredKeys: [] },
);
const clean = (env: Record<string, string | undefined>) => {
  const out: Record<string, string> = { NFSDCLTRACK_CONF_FILE: conf };
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !v.includes('\0')) out[k] = v;
  // A kill at a named point is a test of its own (faults-crash.ts), not bad input.
  if (out.NFSDCLTRACK_CRASH_AT !== undefined && (CRASH_POINTS as readonly string[]).includes(out.NFSDCLTRACK_CRASH_AT)) delete out.NFSDCLTRACK_CRASH_AT;
  return out;
};

type Reporter = Pick<typeof t, 'same' | 'comment'>;
const ADMIN = new Set(['list', 'status', 'verify', 'compact', 'import', 'export']);

async function runCases(t: Reporter, label: string, cases: { argv: string[]; env: Record<string, string>; dir?: string | null }[]) {
  const bad: string[] = [];
  const t0 = Date.now();
  await pool(cases, 3, async (c) => {
    fs.mkdirSync(path.join(root, 'recdir'), { recursive: true });
    fs.mkdirSync(path.join(root, 'topdir', 'sub'), { recursive: true });
    const r = await run(c.dir ?? null, c.argv, { env: c.env, cwd, timeoutMs: 15_000 });
    const what = `${JSON.stringify(c.argv)} env ${JSON.stringify(c.env)}`;
    if (r.signal) bad.push(`${what}: killed by ${r.signal} after ${r.ms} ms (hang?)`);
    // Administrator commands (SPEC §6) may use ordinary exit codes.
    else if (!okStatus(r.status) && !(r.status === 2 && c.argv.some((a) => ADMIN.has(a)))) bad.push(`${what}: undocumented status ${r.status}: ${r.stderr}`);
    if (hasStackTrace(r.stderr + r.stdout)) bad.push(`${what}: stack trace: ${r.stderr}`);
  });
  t.same(bad.slice(0, 10), [], `${label}: ${cases.length} cases, documented statuses only, no stack trace, no hang`);
  t.comment(`${label}: ${cases.length} generated cases in ${Date.now() - t0} ms (seed ${SEED})`);
  return cases.length;
}

let total = 0;

t.test('command lines and environment values', async (t) => {
  await buildStore(store, [{ id: 'a1a1', time: 1000, session: false }, { id: 'b2b2', time: nowSec(), session: true }]);
  const cases = fc.sample(fc.tuple(argvArb, envArb), { numRuns: 140, seed: SEED }).map(([argv, env]) => ({ argv, env: clean(env) }));
  // Kernel-shaped lines with hostile values too: every command, hostile args and env.
  const kernel = fc
    .sample(fc.tuple(fc.constantFrom('init', 'create', 'remove', 'check', 'gracedone'), hex, envArb), { numRuns: 60, seed: SEED + 1 })
    .map(([cmd, arg, env]) => ({ argv: ['-f', '-s', store, cmd, arg], env: clean(env) }));
  total += await runCases(t, 'command lines and environment', [...cases, ...kernel]);
});

t.test('nfs.conf text', async (t) => {
  const line = fc.oneof(
    fc.constantFrom('[nfsdcltrack]', '[NFSDCLTrack]', '[general]', '[nfsdcltrack "sub"]', '[', ']', '[]', '# comment', '; comment', ''),
    fc.constantFrom('debug = 1', 'debug=all', 'debug = parse,bogus', 'Debug = "0"', "debug = 'general'", 'debug = $HOME', 'debug = \\', 'debug'),
    fc.constantFrom('storagedir = /nonexistent', 'storagedir = "', `storagedir = ${store}`, 'storagedir ='),
    fc.constantFrom('include = missing.conf', 'include = -missing.conf', `include = ${root}/nfs.conf`, 'include = /dev/null', 'include = .', 'include = nfs.conf'),
    fc.string({ maxLength: 30 }),
    fc.string({ maxLength: 30, unit: 'binary' }),
  );
  const texts = fc.sample(fc.array(line, { maxLength: 12 }), { numRuns: 80, seed: SEED + 2 }).map((ls) => ls.join('\n'));
  const cases = texts.map((text, i) => {
    const f = path.join(root, `fuzz-${i}.conf`);
    fs.writeFileSync(f, text.replace(/\0/g, ''));
    // -s always names the store: a fuzzed storagedir key must not send writes elsewhere.
    return { argv: ['-f', '-s', store, i % 2 ? 'check' : 'create', 'c0c0'], env: { NFSDCLTRACK_CONF_FILE: f } };
  });
  total += await runCases(t, 'nfs.conf text', cases);
});

t.test('store file contents', async (t) => {
  const now = nowSec();
  const rec = fc.record({
    id: fc.stringMatching(/^(?:[0-9a-f]{2}){0,4}$/),
    time: fc.oneof(fc.constant(1000), fc.constant(now), fc.nat({ max: 99_999_999_999 })),
    session: fc.boolean(),
  });
  const validSnapLine = rec.map((r) => encodeRecord(r));
  const jEntry = fc.tuple(fc.constantFrom(1, 2), fc.nat({ max: 6 }), fc.constantFrom('set', 'del', 'lost'), rec).map(([gen, seq, op, r]) =>
    encodeJournalEntry({ gen, seq, op: op as 'set', id: op === 'lost' ? '' : r.id, state: op === 'set' ? r : null, prev: null }),
  );
  const junk = fc.oneof(fc.string({ maxLength: 40, unit: 'binary' }).map((s) => s + '\n'), fc.string({ maxLength: 40 }), fc.constant('\n'), fc.constant(''));
  const mutate = (s: string) =>
    fc.tuple(fc.nat(), fc.nat({ max: 255 })).map(([at, b]) => (s.length === 0 ? s : s.slice(0, at % s.length) + String.fromCharCode(b) + s.slice((at % s.length) + 1)));
  const snapText = fc
    .tuple(
      fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 4 }), fc.nat({ max: 4 }), fc.nat({ max: 3 })).map(([gen, records, v40, times]) => encodeSnapshotHeader({ gen, records, v40, times })),
      fc.array(fc.oneof({ weight: 4, arbitrary: validSnapLine }, { weight: 1, arbitrary: junk }), { maxLength: 6 }),
      fc.array(fc.tuple(fc.nat({ max: 99_999_999_999 }), fc.nat({ max: 9 })).map(([a, b]) => encodeTimeLine(a, b)), { maxLength: 3 }),
    )
    .map(([h, lines, times]) => h + lines.join('') + times.join(''))
    .chain((s) => fc.oneof({ weight: 3, arbitrary: fc.constant(s) }, { weight: 1, arbitrary: mutate(s) }));
  const journalText = fc
    .tuple(fc.constantFrom(encodeJournalHeader(1), encodeJournalHeader(2), '', '#junk\n'), fc.array(fc.oneof({ weight: 4, arbitrary: jEntry }, { weight: 1, arbitrary: junk }), { maxLength: 8 }))
    .map(([h, ls]) => h + ls.join(''))
    .chain((s) => fc.oneof({ weight: 3, arbitrary: fc.constant(s) }, { weight: 1, arbitrary: mutate(s) }));
  const files = fc.record({ snap: fc.option(snapText, { nil: undefined }), journal: fc.option(journalText, { nil: undefined }) });

  // In-process: every reader and writer entry point, thousands of cases.
  const scratch = path.join(root, 'files');
  let inproc = 0;
  await fc.assert(
    fc.asyncProperty(files, fc.array(rec, { maxLength: 3 }), async (f, probes) => {
      inproc++;
      fs.rmSync(scratch, { recursive: true, force: true });
      fs.mkdirSync(scratch, { mode: 0o700 });
      if (f.snap !== undefined) fs.writeFileSync(path.join(scratch, 'clients.snap'), f.snap, 'latin1');
      if (f.journal !== undefined) fs.writeFileSync(path.join(scratch, 'clients.journal'), f.journal, 'latin1');
      const s = new Store({ dir: scratch });
      const view = s.read();
      try {
        for (const p of probes) view.get(p.id);
        view.countReclaiming(now);
        if (view.healthy) for (const _r of s.records(view)) void _r;
      } catch (e) {
        // A snapshot out of order is refused with a plain message; anything else is a bug.
        if (!/not sorted/.test((e as Error).message)) throw e;
      } finally {
        view.close();
      }
      try {
        await s.mutate((tx) => void tx.put(probes[0]?.id ?? 'abcd', { time: now, session: true }));
        await s.gracedone(BigInt(now - 10));
      } catch (e) {
        if (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError) throw e;
      }
      const after = s.read();
      after.close();
    }),
    { numRuns: 1500, seed: SEED + 3 },
  );
  t.pass(`store readers and writers survive ${inproc} generated store files`);
  total += inproc;

  // Through the program, on a sample.
  const sample = fc.sample(fc.tuple(files, fc.constantFrom('check', 'create', 'remove', 'gracedone', 'init'), rec), { numRuns: 60, seed: SEED + 4 });
  const cases = sample.map(([f, cmd, r], i) => {
    const dir = path.join(root, `sf-${i}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    if (f.snap !== undefined) fs.writeFileSync(path.join(dir, 'clients.snap'), f.snap, 'latin1');
    if (f.journal !== undefined) fs.writeFileSync(path.join(dir, 'clients.journal'), f.journal, 'latin1');
    return { argv: cmd === 'init' ? ['init'] : [cmd, cmd === 'gracedone' ? String(now) : r.id], env: {}, dir };
  });
  total += await runCases(t, 'store file contents (program)', cases);
});

t.test('summary', async (t) => {
  t.comment(`bad input: ${total} generated cases in all (seed ${SEED}; set NFSDCLTRACK_FAULTS_SEED to replay)`);
  t.ok(total > 1000, `the generators produced cases (${total})`);
});
