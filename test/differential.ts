// Differential test: our dist/nfsdcltrack against the reference C program
// from Debian's nfs-kernel-server (nfs-utils 2.6.2), fetched with
// `apt-get download` + `dpkg -x` when it is not here yet (no service is
// started). Random sequences of commands, ids, environments and gracedone
// arguments run against both, each with its own storage dir and its own copy
// of the legacy recovery dirs; compared after every operation: the exit
// status, the legacy dirs, and whether grace was lifted; at the end of each
// sequence: which ids may reclaim (a check with HAS_SESSION=Y writes nothing).
//
// The C program writes /proc/fs/nfsd/v4_end_grace: it runs in a private
// mount namespace (unshare -m) where /proc/fs is a bind mount of a directory
// of the sequence, so the real file is never touched and the lift is seen.
//
// Time: records carry `now`; every time threshold here is far from now (or
// negative, or huge), so results do not depend on timing.
//
// Known deliberate difference (SPEC §4): an unparseable GRACE_START (no digits
// at all, e.g. "abc" or "") lifts nothing in ours while C reads it as 0; for
// those operations the lift is checked against that rule instead.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFile, spawnSync } from 'child_process';
import { strtol } from '../lib/strtol';
import { privateProgram } from './lib/built';
import { loudSkip, referenceProgram } from './lib/reference';

const SEQUENCES = Number(process.env.NFSDCLTRACK_DIFF_SEQUENCES ?? 60);
const OPS = Number(process.env.NFSDCLTRACK_DIFF_OPS ?? 50);
const PARALLEL = Number(process.env.NFSDCLTRACK_DIFF_PARALLEL ?? 3);
const SEED = Number(process.env.NFSDCLTRACK_TEST_SEED ?? 20261124);

function skip(why: string): void {
  loudSkip(t, `differential test: ${why}`);
}

/** The reference binary, fetched and unpacked once per machine; null (with the reason) when impossible. */
function referenceBinary(): { bin: string } | { why: string } {
  const ref = referenceProgram('sbin/nfsdcltrack');
  if ('why' in ref) return ref;
  const { bin } = ref;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-ref-probe-'));
  try {
    const r = spawnSync(bin, ['-s', path.join(probe, 's'), 'check', 'ab'], { env: {}, encoding: 'utf8' });
    if (r.status !== 255) return { why: `the reference binary does not run here (status ${r.status}, ${r.error?.message ?? r.stderr.trim()}; libsqlite3 missing, or not root so it cannot drop capabilities)` };
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
  return { bin };
}

/** Can the C program run in its own mount namespace, with /proc/fs bind-mounted from a dir of ours? */
function namespaceWorks(): boolean {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-ns-'));
  try {
    fs.mkdirSync(path.join(dir, 'nfsd'));
    fs.writeFileSync(path.join(dir, 'nfsd', 'probe'), 'x');
    const r = spawnSync('/usr/bin/unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', NS_SCRIPT, dir, '/bin/cat', '/proc/fs/nfsd/probe'], { env: {}, encoding: 'utf8' });
    return r.status === 0 && r.stdout === 'x';
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const NS_SCRIPT = '/usr/bin/mount --bind "$0" /proc/fs || exit 99; exec "$@"';

// --- random generation ----------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  hex(bytes: number): string {
    let s = '';
    for (let i = 0; i < bytes; i++) s += this.int(256).toString(16).padStart(2, '0');
    return s;
  }
}

/** Valid ids first: `valid` of them. */
function idPool(r: Rng): { ids: string[]; valid: number } {
  const max = r.hex(1024);
  const base = [r.hex(1 + r.int(6)), r.hex(1 + r.int(6)), r.hex(2)];
  const valid = ['', 'ab', 'AB', 'aBcD', 'abcd', ...base, base[0].toUpperCase(), max, max.toUpperCase()];
  const invalid = [max + r.hex(1), max + 'a', max.slice(0, -1), 'abc', 'zz', 'g0', '0x12', ' ab', 'ab ', r.hex(1023) + 'zz', r.hex(1024) + 'z'];
  return { ids: [...valid, ...invalid], valid: valid.length };
}
function pickId(r: Rng, pool: { ids: string[]; valid: number }): string {
  return r.chance(0.75) ? pool.ids[r.int(pool.valid)] : r.pick(pool.ids);
}
const NOW = Math.floor(Date.now() / 1000);
const GRACE_STARTS = [undefined, undefined, '1000', String(NOW - 100_000), String(NOW + 100_000), '0x10', '010', '-5', 'abc', '', ' 7x',
  '99999999999999999999', '9223372036854775807', '9223372036854775806', '0'];
const SESSIONS = [undefined, 'Y', 'Y', 'N', 'Yes', 'y', '', ' Y', 'yes'];
const GRACEDONE_ARGS = [['0'], [''], ['--', '-1'], ['-1'], ['0x10'], ['010'], ['1000'], [String(NOW - 100_000)], [String(NOW + 100_000)],
  ['abc'], ['12x'], [' 5'], ['99999999999999999999'], ['--', '-99999999999999999999'], ['9223372036854775807'], ['0x'], ['+7'], ['08'],
  ['0x7FFFFFFFFFFFFFFF'], ['--', '-9223372036854775808'], [`0x${(NOW + 100_000).toString(16)}`], [' '], ['1 ']];
// (Our admin commands, like `list`, are ours alone: SPEC §6 lets them use ordinary statuses.)
const UNKNOWN = ['foo', 'Check', 'INIT', '', 'gracedone2', 'Remove', 'create '];
const RECDIRS = ['r1', 'r2', 'r3', 'missing', 'file', 'full'];

interface Op {
  /** Arguments, with "@" standing for the implementation's own root dir. */
  args: string[];
  env: Record<string, string>;
  /** A harness action on both roots instead of a command. */
  mkdir?: string;
}

function storageArgs(r: Rng): string[] {
  const dir = r.chance(0.03) ? r.pick(['@/file/sub', '@/missing/store', '@/file']) : '@/store';
  return r.pick([['-s', dir], [`--storagedir=${dir}`], ['--stor', dir], [`-s${dir}`], ['-fs', dir], ['-d', '-s', dir]]);
}

function randomOp(r: Rng, ids: { ids: string[]; valid: number }): Op {
  if (r.chance(0.04)) return { args: [], env: {}, mkdir: r.pick(['r1', 'r2', 'r3']) };
  const env: Record<string, string> = {};
  const session = r.pick(SESSIONS);
  if (session !== undefined) env.NFSDCLTRACK_CLIENT_HAS_SESSION = session;
  const gs = r.pick(GRACE_STARTS);
  if (gs !== undefined) env.NFSDCLTRACK_GRACE_START = gs;
  if (r.chance(0.5)) env.NFSDCLTRACK_LEGACY_RECDIR = `@/v4recovery/${r.pick(RECDIRS)}`;
  if (r.chance(0.3)) env.NFSDCLTRACK_LEGACY_TOPDIR = r.pick(['@/v4recovery', '@/v4recovery', '@/nowhere', '@/v4recovery/file']);
  const x = r.int(100);
  let cmd: string[];
  if (x < 8) cmd = r.chance(0.8) ? ['init'] : ['init', 'extra'];
  else if (x < 33) cmd = ['create', pickId(r, ids)];
  else if (x < 45) cmd = ['remove', pickId(r, ids)];
  else if (x < 80) cmd = ['check', pickId(r, ids)];
  else if (x < 92) cmd = ['gracedone', ...r.pick(GRACEDONE_ARGS)];
  else if (x < 97) cmd = [r.pick(UNKNOWN), pickId(r, ids)];
  else cmd = [r.pick(['create', 'check', 'remove', 'gracedone'])];
  if (r.chance(0.1) && cmd.length > 1 && cmd[1] !== '--') cmd.push('extra');
  const opts = storageArgs(r);
  const args = r.chance(0.7) ? [...opts, ...cmd] : cmd[1] === '--' ? [...opts, ...cmd] : [...cmd, ...opts];
  return { args, env };
}

// --- running --------------------------------------------------------------------

interface Outcome {
  status: number | null;
  lifted: boolean;
}

function exec(file: string, args: string[], env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 60_000, maxBuffer: 1 << 20 }, (err) => {
      if (!err) resolve(0);
      else resolve(typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null);
    });
  });
}

class Impl {
  constructor(readonly name: string, readonly root: string, private readonly runner: (args: string[], env: Record<string, string>) => Promise<number | null>) {}
  get graceFile(): string {
    return path.join(this.root, 'procfs', 'nfsd', 'v4_end_grace');
  }
  sub(s: string): string {
    return s.replace(/^@/, this.root);
  }
  async run(op: Op): Promise<Outcome> {
    fs.writeFileSync(this.graceFile, '');
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(op.env)) env[k] = this.sub(v);
    const status = await this.runner(op.args.map((a) => a.replace(/^(-s|--storagedir=|-fs)?@/, (_m, p: string | undefined) => (p ?? '') + this.root)), env);
    return { status, lifted: fs.readFileSync(this.graceFile, 'utf8') === 'Y' };
  }
  /** The legacy dirs, as a listing to compare. */
  legacy(): string {
    const out: string[] = [];
    const walk = (d: string, rel: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        out.push(`${rel}${e.name}${e.isDirectory() ? '/' : ''}`);
        if (e.isDirectory()) walk(path.join(d, e.name), `${rel}${e.name}/`);
      }
    };
    walk(path.join(this.root, 'v4recovery'), '');
    return out.join(' ');
  }
}

function makeRoot(root: string): void {
  fs.mkdirSync(path.join(root, 'v4recovery', 'full', 'inner'), { recursive: true });
  for (const d of ['r1', 'r2', 'r3']) fs.mkdirSync(path.join(root, 'v4recovery', d));
  fs.writeFileSync(path.join(root, 'v4recovery', 'file'), 'x');
  fs.writeFileSync(path.join(root, 'file'), 'x');
  fs.mkdirSync(path.join(root, 'procfs', 'nfsd'), { recursive: true });
  fs.writeFileSync(path.join(root, 'procfs', 'nfsd', 'v4_end_grace'), '');
}

interface SeqResult {
  ops: number;
  mismatches: string[];
}
/** What the compared operations covered: C's exit statuses, lifts, legacy dir changes. */
const coverage = { statuses: new Map<string, number>(), lifts: 0, legacyChanges: 0 };
const count = (k: string) => coverage.statuses.set(k, (coverage.statuses.get(k) ?? 0) + 1);

async function runSequence(seq: number, oursBin: string, refBin: string, useNs: boolean, tmp: string): Promise<SeqResult> {
  const r = new Rng(SEED * 1000 + seq);
  const dir = path.join(tmp, `seq-${seq}`);
  const ours = new Impl('ours', path.join(dir, 'A'), (args, env) =>
    exec(oursBin, args, {
      NFSDCLTRACK_END_GRACE_FILE: path.join(dir, 'A', 'procfs', 'nfsd', 'v4_end_grace'),
      NFSDCLTRACK_CONF_FILE: path.join(dir, 'no-nfs.conf'),
      NFSDCLTRACK_SYSLOG_SOCKET: path.join(dir, 'no-syslog'),
      // Every other sequence compacts its journal all the time.
      ...(seq % 2 ? { NFSDCLTRACK_COMPACT_BYTES: '300' } : {}),
      ...env,
    }),
  );
  const ref = new Impl('C', path.join(dir, 'B'), (args, env) =>
    useNs
      ? exec('/usr/bin/unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', NS_SCRIPT, path.join(dir, 'B', 'procfs'), refBin, ...args], env)
      : exec(refBin, args, env),
  );
  makeRoot(ours.root);
  makeRoot(ref.root);
  const ids = idPool(r);
  const mismatches: string[] = [];
  let ops = 0;
  const describe = (op: Op) => `seq ${seq}: ${Object.entries(op.env).map(([k, v]) => `${k.replace('NFSDCLTRACK_', '')}=${JSON.stringify(v)}`).join(' ')} nfsdcltrack ${op.args.map((a) => (a.length > 40 ? a.slice(0, 12) + `…(${a.length})` : JSON.stringify(a))).join(' ')}`;
  const compare = async (op: Op, what: string) => {
    const before = ref.legacy();
    const [a, b] = await Promise.all([ours.run(op), ref.run(op)]);
    ops++;
    count(`${op.args.find((x) => !x.startsWith('-') && !x.startsWith('@')) ?? '-'}=${b.status}`);
    if (b.lifted) coverage.lifts++;
    if (ref.legacy() !== before) coverage.legacyChanges++;
    if (a.status !== b.status) mismatches.push(`${describe(op)}: ${what} status ours ${a.status}, C ${b.status}`);
    const gs = op.env.NFSDCLTRACK_GRACE_START;
    const unparseable = gs !== undefined && !strtol(gs).converted;
    if (unparseable) {
      if (a.lifted) mismatches.push(`${describe(op)}: lifted grace with an unparseable GRACE_START`);
    } else if (useNs && a.lifted !== b.lifted) {
      mismatches.push(`${describe(op)}: grace lifted: ours ${a.lifted}, C ${b.lifted}`);
    }
    const la = ours.legacy();
    const lb = ref.legacy();
    if (la !== lb) mismatches.push(`${describe(op)}: legacy dirs: ours [${la}], C [${lb}]`);
  };
  for (let i = 0; i < OPS; i++) {
    const op = randomOp(r, ids);
    if (op.mkdir) {
      for (const impl of [ours, ref]) fs.mkdirSync(path.join(impl.root, 'v4recovery', op.mkdir), { recursive: true });
      continue;
    }
    await compare(op, 'op');
    // Sequences must not drift apart silently: stop at the first mismatch.
    if (mismatches.length > 0) break;
  }
  if (mismatches.length === 0) {
    // Who may reclaim now: a session check reads only.
    const probes = new Set([...ids.ids.slice(0, ids.valid).map((x) => x.toLowerCase()), ...ids.ids.slice(ids.valid, ids.valid + 2)]);
    for (const id of probes) {
      await compare({ args: ['-s', '@/store', 'check', id], env: { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' } }, 'final check');
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { ops, mismatches };
}

// --- the test -------------------------------------------------------------------

t.test('ours and the C nfsdcltrack agree', async (t) => {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    skip('not root: the C program fails when it cannot drop its capabilities');
    return;
  }
  const ref = referenceBinary();
  if ('why' in ref) {
    skip(ref.why);
    return;
  }
  const useNs = namespaceWorks();
  if (!useNs) t.comment('!!! no private mount namespace: grace lifting is not compared (the C program sees the real /proc/fs/nfsd)');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-diff-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const ours = privateProgram(path.join(tmp, 'dist'));
  const started = Date.now();
  const results: SeqResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < SEQUENCES) results.push(await runSequence(next++, ours, ref.bin, useNs, tmp));
    }),
  );
  const ops = results.reduce((s, x) => s + x.ops, 0);
  const mismatches = results.flatMap((x) => x.mismatches);
  t.comment(`${SEQUENCES} sequences, ${ops} operations compared (each run by both programs) in ${((Date.now() - started) / 1000).toFixed(1)} s, ${mismatches.length} mismatches`);
  const seen = [...coverage.statuses].sort().map(([k, v]) => `${k.length > 20 ? k.slice(0, 8) + '…' + k.slice(-4) : k}:${v}`);
  t.comment(`C exit statuses by command: ${seen.join(' ')}; grace lifted ${coverage.lifts} times; legacy dirs changed ${coverage.legacyChanges} times`);
  t.ok(ops >= SEQUENCES * 10, `${ops} operations compared`);
  t.same(mismatches.slice(0, 30), [], 'no mismatch');
});
