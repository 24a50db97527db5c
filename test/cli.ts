// End-to-end tests of the built program (dist/nfsdcltrack) as the kernel runs
// it: a minimal environment (only the NFSDCLTRACK_* variables of the case: no
// PATH, no HOME), then the exit status, then the store files on disk.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { ensureStorageDir, Store } from '../lib/store/store';
import {
  decodeJournalEntry,
  decodeJournalHeader,
  decodeRecord,
  decodeSnapshotHeader,
  decodeTimeLine,
  keyOf,
  type RecState,
} from '../lib/store/format';
import { privateProgram } from './lib/built';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-cli-'));
const mounts: string[] = [];
t.teardown(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  spawnSync('chattr', ['-R', '-i', TMP]);
  fs.rmSync(TMP, { recursive: true, force: true });
});

const BIN = privateProgram(path.join(TMP, 'dist'));

let n = 0;
const fresh = (name = 'case'): string => {
  const d = path.join(TMP, `${name}-${++n}`);
  fs.mkdirSync(d);
  return d;
};

type Env = Record<string, string>;
interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** The kernel's way: nothing in the environment but the case's variables. */
function run(args: string[], env: Env = {}): Run {
  // A missing syslog socket: nothing is delivered anywhere, and nothing else is read.
  const r = spawnSync(BIN, args, { env: { NFSDCLTRACK_SYSLOG_SOCKET: path.join(TMP, 'no-syslog'), ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const status = (args: string[], env: Env = {}) => run(args, env).status;

interface Disk {
  records: Map<string, RecState>;
  files: string[];
}
/** Read the store as an administrator would: every line must decode; the journal replays over the snapshot. */
function readStore(dir: string): Disk {
  const records = new Map<string, RecState>();
  const files = fs.readdirSync(dir).sort();
  const snapText = fs.readFileSync(path.join(dir, 'clients.snap'), 'latin1');
  const snapLines = snapText.split('\n');
  if (snapLines.pop() !== '') throw new Error('snapshot does not end with a newline');
  const header = decodeSnapshotHeader(snapLines[0]);
  if (!header) throw new Error(`bad snapshot header: ${snapLines[0]}`);
  let prevKey: string | null = null;
  let v40 = 0;
  for (const line of snapLines.slice(1)) {
    if (line.startsWith('~')) {
      if (!decodeTimeLine(line)) throw new Error(`bad time line: ${line}`);
      continue;
    }
    const rec = decodeRecord(line);
    if (!rec) throw new Error(`bad record line: ${line}`);
    if (prevKey !== null && keyOf(rec.id) <= prevKey) throw new Error('snapshot not sorted');
    prevKey = keyOf(rec.id);
    if (!rec.session) v40++;
    records.set(rec.id, { time: rec.time, session: rec.session, epoch: rec.epoch, ph: rec.ph, older: rec.older });
  }
  if (records.size !== header.records || v40 !== header.v40) throw new Error('snapshot header counts are wrong');
  const jLines = fs.readFileSync(path.join(dir, 'clients.journal'), 'latin1').split('\n');
  if (jLines.pop() !== '') throw new Error('journal does not end with a newline');
  const jh = decodeJournalHeader(jLines[0]);
  if (!jh) throw new Error(`bad journal header: ${jLines[0]}`);
  if (jh.gen === header.gen) {
    for (const line of jLines.slice(1)) {
      const e = decodeJournalEntry(line);
      if (!e) throw new Error(`bad journal line: ${line}`);
      if (e.op === 'set') records.set(e.id, e.state!);
      else if (e.op === 'del') records.delete(e.id);
    }
  } else if (jh.gen > header.gen || jLines.length > 1) {
    throw new Error(`journal gen ${jh.gen} does not match snapshot gen ${header.gen}`);
  }
  return { records, files };
}
const ids = (dir: string) => [...readStore(dir).records.keys()].sort();
/** Size and mtime of every file in the storage dir: what "writes nothing" compares. */
function fingerprint(dir: string): string {
  return fs
    .readdirSync(dir)
    .sort()
    .map((f) => {
      const st = fs.lstatSync(path.join(dir, f));
      return `${f}:${st.size}:${st.mtimeMs}:${st.ino}`;
    })
    .join(' ');
}
const now = () => Math.floor(Date.now() / 1000);
/** A store whose records carry chosen times, through the store's own API. */
async function seed(dir: string, recs: Array<[string, number, boolean]>): Promise<void> {
  ensureStorageDir(dir);
  for (const [id, time, session] of recs) {
    await new Store({ dir, now: () => time }).mutate((tx) => void tx.put(id, { time, session }));
  }
}
const NO_TRACE = /\n\s+at |Error:|TypeError|RangeError|node:internal|\{\s*$/m;

t.test('exit statuses, one per row of SPEC §6', async (t) => {
  const s = path.join(fresh(), 'store');
  t.equal(status(['-s', s, 'init']), 0, 'init: 0');
  const st = fs.statSync(s);
  t.equal(st.mode & 0o777, 0o700, 'storage dir is 0700');
  for (const f of fs.readdirSync(s)) {
    const m = fs.lstatSync(path.join(s, f));
    if (m.isFile()) t.equal(m.mode & 0o777, 0o600, `${f} is 0600`);
  }
  t.equal(status(['-s', s, 'create', 'abcd']), 0, 'create: 0');
  t.equal(status(['-s', s, 'check', 'abcd']), 0, 'check of a known client: 0');
  t.equal(status(['-s', s, 'remove', 'abcd']), 0, 'remove: 0');
  t.equal(status(['-s', s, 'remove', 'abcd']), 0, 'remove of an absent client: 0');
  t.equal(status(['-s', s, 'gracedone', '0']), 0, 'gracedone: 0');

  for (const args of [['-h'], ['--help'], ['-x', 'init'], ['--bogus', 'init'], ['gracedone', '-1'], ['init', '-s'], ['--help=x']]) {
    const r = run(['-s', s, ...args]);
    t.equal(r.status, 1, `${args.join(' ')}: usage, 1`);
    t.match(r.stdout, /^Usage: nfsdcltrack \[ -hfd \] \[ -s dir \] < cmd > < arg >/, 'usage on stdout');
  }
  const einval: string[][] = [[], ['create'], ['check'], ['remove'], ['gracedone'], ['create', 'abc'], ['check', 'zz'], ['remove', '0x12'],
    ['create', ' ab'], ['gracedone', '12x'], ['gracedone', '0x'], ['gracedone', ' '], ['gracedone', '1.5'], ['gracedone', '--', '-']];
  for (const args of einval) t.equal(status(['-s', s, ...args]), 234, `${JSON.stringify(args)}: EINVAL, 234`);
  const big = 'ab'.repeat(1025);
  for (const c of ['create', 'check', 'remove']) {
    t.equal(status(['-s', s, c, big]), 151, `${c} of a 1025-byte id: ENOBUFS, 151`);
    t.equal(status(['-s', s, c, big + 'a']), 151, `${c} of 2051 digits: ENOBUFS, 151`);
    t.equal(status(['-s', s, c, 'ab'.repeat(1024) + 'a']), 151, `${c} of 2049 valid digits: ENOBUFS before odd length`);
  }
  t.equal(status(['-s', s, 'create', 'AB'.repeat(1024)]), 0, 'exactly 1024 bytes: 0');
  t.equal(status(['-s', s, 'check', 'ab'.repeat(1024)]), 0, 'and found in lowercase');
  t.equal(status(['-s', s, 'gracedone', '99999999999999999999']), 222, 'gracedone out of range: ERANGE, 222');
  t.equal(status(['-s', s, 'gracedone', '--', '-99999999999999999999']), 222, 'negative out of range: 222');
  t.equal(status(['-s', s, 'gracedone', '99999999999999999999x']), 222, 'ERANGE wins over trailing garbage');
  for (const c of ['foo', 'Init', 'CHECK', 'create ', 'list2', '']) {
    t.equal(status(['-s', s, c, 'ab']), 218, `unknown command ${JSON.stringify(c)}: ENOSYS, 218`);
  }
  t.equal(status(['-s', s, 'check', 'dead']), 255, 'check of an unknown client: EPERM, 255');
  const file = path.join(fresh(), 'file');
  fs.writeFileSync(file, 'x');
  for (const c of [['create', 'ab'], ['remove', 'ab'], ['check', 'ab'], ['gracedone', '0'], ['init']]) {
    t.equal(status(['-s', path.join(file, 'sub'), ...c]), 236, `${c[0]} with a storage dir through a file: ENOTDIR, 236`);
  }
  t.equal(status(['-s', file, 'create', 'ab']), 236, 'storage dir is a file: ENOTDIR, 236');
  const missing = path.join(fresh(), 'no', 'such');
  for (const c of [['create', 'ab'], ['remove', 'ab'], ['check', 'ab'], ['gracedone', '0']]) {
    t.equal(status(['-s', missing, ...c]), 254, `${c[0]} with a missing parent: ENOENT, 254`);
  }
  t.equal(status(['-s', missing, 'init']), 243, 'init that cannot create the store: EACCES, 243');
  t.notOk(fs.existsSync(path.dirname(missing)), 'no parent created');
  t.equal(status(['-s', missing, 'create', 'zz']), 254, 'the store is opened before the id is parsed, as in C');
});

/** A storage dir that cannot be written: a tmpfs remounted read-only, else chattr +i. */
function readOnly(dir: string): string | null {
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'nfsdcltrack-test', dir]);
  if (m.status === 0) {
    mounts.push(dir);
    return 'ro';
  }
  return null;
}
function remountRo(dir: string): void {
  const r = spawnSync('mount', ['-o', 'remount,ro', dir]);
  if (r.status !== 0) throw new Error(`remount ro failed: ${r.stderr}`);
}

t.test('a store that cannot be updated', async (t) => {
  const mnt = fresh('ro');
  if (readOnly(mnt)) {
    const s = path.join(mnt, 'store');
    t.equal(status(['-s', s, 'create', 'aa']), 0);
    t.equal(status(['-s', s, 'create', 'bb'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0);
    const before = readStore(s);
    remountRo(mnt);
    t.equal(status(['-s', s, 'create', 'cc']), 135, 'create: EREMOTEIO, 135');
    t.equal(status(['-s', s, 'remove', 'aa']), 135, 'remove: EREMOTEIO, 135');
    t.equal(status(['-s', s, 'gracedone', '--', '-1']), 135, 'gracedone: EREMOTEIO, 135');
    t.equal(status(['-s', s, 'check', 'bb'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'a session check only reads: 0');
    t.equal(status(['-s', s, 'check', 'aa']), 0, 'a v4.0 check of a known client still succeeds (issue 3), unlike C');
    t.equal(status(['-s', s, 'init']), 226, 'init on a read-only file system: EROFS, 226');
    t.equal(status(['-s', path.join(mnt, 'new'), 'create', 'aa']), 226, 'a store that cannot be created: EROFS, 226');
    t.same(readStore(s).records, before.records, 'store unchanged');
  } else if (spawnSync('chattr', ['-V']).status !== null) {
    const s = path.join(fresh(), 'store');
    t.equal(status(['-s', s, 'create', 'aa']), 0);
    for (const f of fs.readdirSync(s)) spawnSync('chattr', ['+i', path.join(s, f)]);
    const r = spawnSync('chattr', ['+i', s]);
    if (r.status !== 0) {
      t.skip('SKIP: neither mount nor chattr +i is possible here', () => {});
      return;
    }
    t.equal(status(['-s', s, 'create', 'cc']), 135, 'create: 135');
    t.equal(status(['-s', s, 'remove', 'aa']), 135, 'remove: 135');
    t.equal(status(['-s', s, 'gracedone', '--', '-1']), 135, 'gracedone: 135');
    spawnSync('chattr', ['-R', '-i', s]);
    t.same(ids(s), ['aa'], 'store unchanged');
  } else {
    t.skip('SKIP: neither mount nor chattr is available: 135 not tested', () => {});
  }
});

t.test('command line', async (t) => {
  const s = path.join(fresh(), 'store');
  t.equal(status(['create', 'ab', '-s', s]), 0, 'options after the command');
  t.equal(status(['create', '-s', s, 'cd']), 0, 'options between the command and its argument');
  t.equal(status([`--storagedir=${s}`, 'create', 'ef']), 0, '--storagedir=DIR');
  t.equal(status(['--stor', s, 'create', '01']), 0, 'abbreviated --stor DIR');
  t.equal(status([`-s${s}`, 'create', '02']), 0, '-sDIR');
  t.equal(status(['-fds', s, 'create', '03', 'extra', 'args']), 0, '-fds DIR, extra arguments ignored');
  t.equal(status(['-s', s, 'gracedone', '0', 'junk']), 0, 'extra gracedone argument ignored');
  t.same(ids(s), ['01', '02', '03', 'ab', 'cd', 'ef']);
  t.equal(status(['-s', s, '--', 'check', 'ab']), 0, '-- before the command');
  t.equal(status(['-s', s, 'create', '--', '-1']), 234, 'an id after -- is still parsed as hex');
  t.equal(status(['-s', s, 'init', 'extra']), 0, 'init ignores an argument');
  const alt = path.join(fresh(), 'list');
  t.equal(status(['-fs', alt, 'create', 'ab']), 0, 'a storage dir named like an admin command is not a command');
  t.same(ids(alt), ['ab']);
  t.equal(status(['--s', alt, 'check', 'ab']), 0, '--s DIR');
});

t.test('records on disk', async (t) => {
  const s = path.join(fresh(), 'store');
  const t0 = now();
  t.equal(status(['-s', s, 'create', 'AbCd']), 0);
  for (const [v, sess] of [['Y', true], ['Yes', true], ['y', false], ['N', false], ['', false], [' Y', false], ['yes', false]] as const) {
    const id = Buffer.from(`client-${v}`).toString('hex');
    t.equal(status(['-s', s, 'create', id], { NFSDCLTRACK_CLIENT_HAS_SESSION: v }), 0);
    t.equal(readStore(s).records.get(id)?.session, sess, `HAS_SESSION=${JSON.stringify(v)}: has_session ${sess}`);
  }
  const rec = readStore(s).records.get('abcd');
  t.ok(rec && !rec.session && rec.time >= t0 && rec.time <= now(), 'mixed-case id stored in lowercase, time = now');
  t.equal(status(['-s', s, 'create', '']), 0, 'the empty id');
  t.ok(readStore(s).records.has(''), 'stored');
  t.equal(status(['-s', s, 'check', '']), 0);
  t.equal(status(['-s', s, 'remove', 'ABCD']), 0, 'remove with other case');
  t.notOk(readStore(s).records.has('abcd'), 'removed');
  t.equal(status(['-s', s, 'check', 'abcd']), 255);
});

t.test('check: v4.0 updates the time, v4.1 writes nothing', async (t) => {
  const s = path.join(fresh(), 'store');
  await seed(s, [['0a', 1000, false], ['0b', 1000, true]]);
  t.equal(status(['-s', s, 'gracedone', '0']), 0, 'nothing to remove');
  const fp = fingerprint(s);
  t.equal(status(['-s', s, 'check', '0b'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'session check');
  t.equal(fingerprint(s), fp, 'session check wrote nothing (size, mtime, inode unchanged)');
  t.equal(readStore(s).records.get('0b')?.time, 1000, 'session record keeps its time');
  t.equal(status(['-s', s, 'check', '0b']), 0, 'v4.0-style check of a session record');
  t.ok(readStore(s).records.get('0b')!.time >= now() - 5, 'time updated');
  t.equal(readStore(s).records.get('0b')!.session, true, 'has_session kept');
  t.equal(status(['-s', s, 'check', '0a']), 0, 'v4.0 check');
  t.ok(readStore(s).records.get('0a')!.time >= now() - 5, 'v4.0 record time updated');
  t.equal(status(['-s', s, 'gracedone', String(now() - 60)]), 0);
  t.same(ids(s), ['0a', '0b'], 'both survive a gracedone a minute ago');
});

t.test('a command that changes nothing writes nothing', async (t) => {
  const s = path.join(fresh(), 'store');
  t.equal(status(['-s', s, 'create', 'aa'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0);
  t.equal(status(['-s', s, 'gracedone', '0']), 0);
  // A node's first init records it in clients.served (docs/ha.md); later ones by the same node write nothing.
  t.equal(status(['-s', s, 'init']), 0, 'first init on this node');
  const fp = fingerprint(s);
  t.equal(status(['-s', s, 'remove', 'bb']), 0, 'remove of an absent client');
  t.equal(status(['-s', s, 'check', 'bb']), 255, 'refused check');
  t.equal(status(['-s', s, 'check', 'aa'], { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'session check');
  t.equal(status(['-s', s, 'gracedone', '5']), 0, 'gracedone that removes nothing');
  t.equal(status(['-s', s, 'init']), 0, 'init of an existing store');
  for (const bad of [['create', 'zz'], ['remove', 'a'], ['gracedone', 'x'], ['nope'], ['-h']]) run(['-s', s, ...bad]);
  t.equal(fingerprint(s), fp, 'no file written, created or replaced');
  t.same(fs.readdirSync(s).sort(), ['clients.id', 'clients.journal', 'clients.served', 'clients.snap'], 'no lock or temporary file left');
  const empty = path.join(fresh(), 'empty');
  t.equal(status(['-s', empty, 'check', 'aa']), 255);
  t.same(fs.readdirSync(empty), [], 'a check on a new storage dir creates no file');
});

t.test('store on disk follows a model across compactions', async (t) => {
  const s = path.join(fresh(), 'store');
  const env = { NFSDCLTRACK_COMPACT_BYTES: '200' };
  const model = new Set<string>();
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pool = ['', '00', 'ab', 'abcd', '0102', 'ff'.repeat(1024), 'dead', 'beef', 'cafe'];
  const bad: string[] = [];
  for (let i = 0; i < 40; i++) {
    const id = pool[rnd(pool.length)];
    const x = rnd(10);
    let args: string[];
    if (x < 4) {
      args = ['create', id.toUpperCase()];
      model.add(id);
    } else if (x < 7) {
      args = ['remove', id];
      model.delete(id);
    } else if (x < 9) {
      args = ['check', id];
    } else {
      const all = rnd(2) === 0;
      args = ['gracedone', ...(all ? ['--', '-1'] : ['0'])];
      if (all) model.clear();
    }
    const st = status(['-s', s, ...args], { ...env, NFSDCLTRACK_CLIENT_HAS_SESSION: rnd(2) ? 'Y' : 'N' });
    const want = args[0] === 'check' && !model.has(id) ? 255 : 0;
    const got = ids(s);
    if (st !== want || got.join(',') !== [...model].sort().join(',')) bad.push(`${i} ${args[0]} ${id.slice(0, 8)}: status ${st}, records ${got.map((x) => x.slice(0, 8))}, model ${[...model].map((x) => x.slice(0, 8))}`);
  }
  t.same(bad, [], '40 operations, statuses and records as the model says');
  t.ok(fs.statSync(path.join(s, 'clients.journal')).size < 2000, 'the journal was compacted');
});

t.test('gracedone', async (t) => {
  const s = path.join(fresh(), 'store');
  await seed(s, [['01', 100, false], ['02', 200, true], ['03', 300, false]]);
  t.equal(status(['-s', s, 'gracedone', '200']), 0);
  t.same(ids(s), ['02', '03'], 'strictly older records removed');
  t.equal(status(['-s', s, 'gracedone', '0x12C']), 0, 'hex 0x12C = 300');
  t.same(ids(s), ['03']);
  t.equal(status(['-s', s, 'gracedone', '0455']), 0, 'octal 0455 = 301');
  t.same(ids(s), []);
  await seed(s, [['04', 5, false]]);
  t.equal(status(['-s', s, 'gracedone', '']), 0, 'empty means 0');
  t.same(ids(s), ['04']);
  t.equal(status(['-s', s, 'gracedone', ' +5']), 0, 'leading space and sign');
  t.same(ids(s), ['04']);
  t.equal(status(['-s', s, 'gracedone', '--', '-1']), 0, '-1 after --');
  t.same(ids(s), [], 'a negative time removes everything');
  await seed(s, [['05', 99_999_999_999, false]]);
  t.equal(status(['-s', s, 'gracedone', '9223372036854775807']), 0, 'LONG_MAX');
  t.same(ids(s), [], 'removes everything');

  const top = fresh('topdir');
  for (const d of ['a', 'b', 'full']) fs.mkdirSync(path.join(top, d));
  fs.writeFileSync(path.join(top, 'full', 'x'), '');
  fs.writeFileSync(path.join(top, 'file'), '');
  const r = run(['-f', '-s', s, 'gracedone', '0'], { NFSDCLTRACK_LEGACY_TOPDIR: top });
  t.equal(r.status, 0, 'legacy clean-up failures are warnings');
  t.same(fs.readdirSync(top).sort(), ['file', 'full'], 'empty legacy dirs removed, the rest kept');
  t.match(r.stderr, /nfsdcltrack: .*full/, 'warned about the non-empty one');
  t.equal(status(['-s', s, 'gracedone', '0'], { NFSDCLTRACK_LEGACY_TOPDIR: path.join(top, 'missing') }), 0, 'missing topdir: silent');
  t.equal(status(['-s', s, 'gracedone', 'x'], { NFSDCLTRACK_LEGACY_TOPDIR: top }), 234);
  fs.mkdirSync(path.join(top, 'c'));
  t.equal(status(['-s', s, 'gracedone', 'x'], { NFSDCLTRACK_LEGACY_TOPDIR: top }), 234);
  t.ok(fs.existsSync(path.join(top, 'c')), 'no clean-up when the argument is invalid');
});

t.test('legacy transition on check', async (t) => {
  const s = path.join(fresh(), 'store');
  const legacy = fresh('v4recovery');
  const rec = (name: string) => path.join(legacy, name);
  fs.mkdirSync(rec('c1'));
  fs.mkdirSync(rec('c2'));
  fs.mkdirSync(rec('full'));
  fs.writeFileSync(path.join(rec('full'), 'x'), '');
  fs.writeFileSync(rec('file'), '');
  t.equal(status(['-s', s, 'check', 'c1'], { NFSDCLTRACK_LEGACY_RECDIR: rec('c1'), NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }), 0, 'recdir exists: allowed');
  t.notOk(fs.existsSync(rec('c1')), 'recdir removed');
  t.same(readStore(s).records.get('c1'), { time: 0, session: true, epoch: 1, ph: null, older: null }, 'session client inserted with time 0, in the current epoch');
  const t0 = now();
  t.equal(status(['-s', s, 'check', 'c2'], { NFSDCLTRACK_LEGACY_RECDIR: rec('c2') }), 0);
  const c2 = readStore(s).records.get('c2');
  t.ok(c2 && !c2.session && c2.time >= t0, 'v4.0 client inserted with time now');
  t.equal(status(['-s', s, 'check', 'c3'], { NFSDCLTRACK_LEGACY_RECDIR: rec('c3') }), 255, 'missing recdir: 255');
  t.equal(status(['-s', s, 'check', 'c3'], { NFSDCLTRACK_LEGACY_RECDIR: rec('file') }), 255, 'recdir is a file: 255');
  t.equal(status(['-s', s, 'check', 'c3']), 255, 'no NFSDCLTRACK_LEGACY_RECDIR: 255');
  t.notOk(readStore(s).records.has('c3'), 'nothing inserted');
  t.equal(status(['-s', s, 'check', 'cf'], { NFSDCLTRACK_LEGACY_RECDIR: rec('full') }), 255, 'non-empty recdir: 255, as C');
  t.ok(readStore(s).records.has('cf'), 'but the record was inserted, as C does');
  t.ok(fs.existsSync(rec('full')), 'and the dir stays');
  t.equal(status(['-s', s, 'check', 'cf'], { NFSDCLTRACK_LEGACY_RECDIR: rec('full') }), 0, 'so the next check succeeds');
  t.equal(status(['-s', s, 'check', 'c1'], { NFSDCLTRACK_LEGACY_RECDIR: rec('c9') }), 0, 'a known client does not look at the recdir');
  t.equal(status(['-s', s, 'check', 'zz'], { NFSDCLTRACK_LEGACY_RECDIR: rec('file') }), 234, 'bad hex before the legacy path');
});

t.test('ending grace early', async (t) => {
  const dir = fresh('grace');
  const endFile = path.join(dir, 'v4_end_grace');
  const lifted = (): boolean => {
    const v = fs.readFileSync(endFile, 'utf8');
    fs.writeFileSync(endFile, '');
    return v === 'Y';
  };
  fs.writeFileSync(endFile, '');
  const s = path.join(dir, 'store');
  const env = (extra: Env = {}): Env => ({ NFSDCLTRACK_END_GRACE_FILE: endFile, ...extra });
  const boot = now() - 100;
  t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot) })), 0);
  t.ok(lifted(), 'init of an empty store lifts grace');
  t.equal(status(['-s', s, 'init'], env()), 0);
  t.notOk(lifted(), 'without GRACE_START nothing is lifted');
  for (const bad of ['abc', '', ' ', '99999999999999999999', '9223372036854775807']) {
    t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: bad })), 0);
    t.notOk(lifted(), `GRACE_START=${JSON.stringify(bad)}: nothing lifted`);
  }
  t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: `0x${boot.toString(16)}` })), 0);
  t.ok(lifted(), 'hex GRACE_START');
  t.equal(status(['-s', s, 'create', 'a0'], env({ NFSDCLTRACK_GRACE_START: String(boot) })), 0, 'v4.0 create');
  t.notOk(lifted(), 'a v4.0 create never lifts');
  t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot) })), 0);
  t.notOk(lifted(), 'a v4.0 client is pending: init does not lift');
  t.equal(status(['-s', s, 'remove', 'a0'], env({ NFSDCLTRACK_GRACE_START: String(boot) })), 0);
  t.notOk(lifted(), 'remove never lifts');
  await seed(s, [['b0', boot - 10, true], ['b1', boot - 10, true]]);
  t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot) })), 0);
  t.notOk(lifted(), 'an old session client is pending');
  t.equal(status(['-s', s, 'create', 'b0'], env({ NFSDCLTRACK_GRACE_START: String(boot), NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' })), 0);
  t.notOk(lifted(), 'one of two session clients reclaimed');
  t.equal(status(['-s', s, 'create', 'b1'], env({ NFSDCLTRACK_GRACE_START: String(boot), NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' })), 0);
  t.ok(lifted(), 'the last session client\'s create lifts grace');
  t.equal(status(['-s', s, 'create', 'b1'], env({ NFSDCLTRACK_GRACE_START: 'abc', NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' })), 0);
  t.notOk(lifted(), 'unparseable GRACE_START: nothing lifted (deliberately unlike C)');
  t.equal(status(['-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot + 10_000) })), 0);
  t.notOk(lifted(), 'records older than a later boot are pending');
  fs.rmSync(endFile);
  const r1 = run(['-f', '-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot) }));
  t.equal(r1.status, 0, 'missing end-grace file');
  t.equal(r1.stderr, '', 'is silent');
  t.notOk(fs.existsSync(endFile), 'and not created');
  fs.mkdirSync(endFile);
  const r2 = run(['-f', '-s', s, 'init'], env({ NFSDCLTRACK_GRACE_START: String(boot) }));
  t.equal(r2.status, 0, 'an end-grace file that cannot be opened: still 0');
  t.match(r2.stderr, /^nfsdcltrack: .*v4_end_grace/m, 'with a warning');
  fs.rmdirSync(endFile);
  fs.symlinkSync('/dev/full', endFile);
  const r3 = run(['-f', '-s', s, 'create', 'b1'], env({ NFSDCLTRACK_GRACE_START: String(boot), NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' }));
  t.equal(r3.status, 0, 'a failed write: still 0');
  t.match(r3.stderr, /^nfsdcltrack: .*v4_end_grace/m, 'with a warning');
});

t.test('nfs.conf', async (t) => {
  const dir = fresh('conf');
  const s1 = path.join(dir, 'from-conf');
  const s2 = path.join(dir, 'from-cmdline');
  const conf = path.join(dir, 'nfs.conf');
  fs.writeFileSync(conf, `[general]\npipefs-directory = /x\n[nfsdcltrack]\n storagedir = ${s1}\n debug = 1\n`);
  const r = run(['-f', 'create', 'ab'], { NFSDCLTRACK_CONF_FILE: conf });
  t.equal(r.status, 0, 'storagedir from nfs.conf');
  t.same(ids(s1), ['ab']);
  t.match(r.stderr, /^nfsdcltrack: /m, 'debug from nfs.conf: debug lines on stderr with -f');
  const q = run(['create', 'ab'], { NFSDCLTRACK_CONF_FILE: conf });
  t.equal(q.stderr, '', 'but nothing on stderr without -f');
  t.equal(status(['-s', s2, 'create', 'cd'], { NFSDCLTRACK_CONF_FILE: conf }), 0);
  t.same(ids(s2), ['cd'], '-s overrides nfs.conf');
  t.same(ids(s1), ['ab']);
  fs.writeFileSync(conf, `[nfsdcltrack]\nstoragedir = ${s1}\n`);
  t.equal(run(['-f', 'check', 'ab'], { NFSDCLTRACK_CONF_FILE: conf }).stderr, '', 'no debug key: no debug lines');
  t.match(run(['-f', '-d', 'check', 'ab'], { NFSDCLTRACK_CONF_FILE: conf }).stderr, /^nfsdcltrack: /m, '-d: debug lines');
  fs.writeFileSync(conf, '[nfsdcltrack\nstoragedir = "unterminated\n\\');
  const b = run(['-f', '-s', s2, 'check', 'cd'], { NFSDCLTRACK_CONF_FILE: conf });
  t.equal(b.status, 0, 'a broken nfs.conf never stops the program');
  t.notMatch(b.stderr + b.stdout, NO_TRACE, 'and prints no stack trace');
  t.equal(status(['-s', s2, 'check', 'cd'], { NFSDCLTRACK_CONF_FILE: path.join(dir, 'missing.conf') }), 0, 'missing nfs.conf: defaults');
});

t.test('logging', async (t) => {
  const s = path.join(fresh(), 'store');
  const fg = run(['-f', '-s', s, 'check', 'ab']);
  t.equal(fg.status, 255);
  t.equal(fg.stdout, '', 'nothing on stdout');
  const bad = run(['-f', '-s', s, 'frob']);
  t.match(bad.stderr, /^nfsdcltrack: .*frob/m, '-f: errors on stderr as "nfsdcltrack: ..."');
  for (const line of bad.stderr.split('\n').filter(Boolean)) t.match(line, /^nfsdcltrack: /, 'every line prefixed');
  const bg = run(['-s', s, 'frob']);
  t.equal(bg.stderr, '', 'without -f: nothing on stderr');
  t.equal(bg.stdout, '', 'nor on stdout');
  t.equal(run(['-s', s, '-d', 'create', 'zz']).stderr, '', 'not even with -d');
});

t.test('no stack trace for any bad input', async (t) => {
  const dir = fresh('bad');
  const s = path.join(dir, 'store');
  const file = path.join(dir, 'file');
  fs.writeFileSync(file, '');
  const env = { NFSDCLTRACK_LEGACY_RECDIR: file, NFSDCLTRACK_LEGACY_TOPDIR: file, NFSDCLTRACK_GRACE_START: '\u00e9', NFSDCLTRACK_CLIENT_HAS_SESSION: '\u00ff', NFSDCLTRACK_END_GRACE_FILE: dir, NFSDCLTRACK_CONF_FILE: dir, NFSDCLTRACK_COMPACT_BYTES: 'x' };
  const cases: string[][] = [
    ['create', '\u00e9\u00e9'], ['check', 'ab'.repeat(5000)], ['gracedone', '\u00e9'], ['gracedone', '0'.repeat(5000)], ['-s', '', 'create', 'ab'],
    ['-s', file, 'init'], ['-s', '/proc/self/nope/x', 'create', 'ab'], ['--storagedir='], ['-s', '\u00e9', 'check', 'ab'], ['\u00e9'], ['-'], ['--', '--'],
    ['-s', s, 'init', 'x'], ['-s', s, 'create', ''], ['-s', s, 'check', 'ab'], ['-s', s, 'gracedone', ' 0x'],
  ];
  for (const args of cases) {
    for (const fg of [['-f'], []]) {
      const r = run([...fg, ...args], env);
      t.ok(r.status !== null && r.status !== 2 && r.status < 256, `${JSON.stringify(args)} ${fg.join('')}: exit ${r.status}`);
      t.notMatch(r.stdout + r.stderr, NO_TRACE, 'no stack trace');
    }
  }
  // A damaged store: check refuses and says so in one line, without a trace.
  t.equal(status(['-s', s, 'create', 'ab']), 0);
  t.equal(status(['-s', s, 'gracedone', '0']), 0, 'compacted: ab is in the snapshot');
  const snap = path.join(s, 'clients.snap');
  fs.writeFileSync(snap, fs.readFileSync(snap, 'latin1').replace(/^ab /m, 'ac '), 'latin1');
  const r = run(['-f', '-s', s, 'check', 'ab']);
  t.equal(r.status, 255, 'a damaged record is never granted');
  t.notMatch(r.stdout + r.stderr, NO_TRACE, 'no stack trace');
  fs.writeFileSync(snap, 'garbage\n\u0000\u00ff');
  const r2 = run(['-f', '-s', s, 'check', 'ab']);
  t.equal(r2.status, 255, 'a garbage snapshot: 255');
  t.notMatch(r2.stdout + r2.stderr, NO_TRACE, 'no stack trace');
});

t.test('fds 0-2 closed', async (t) => {
  const s = path.join(fresh(), 'store');
  const sh = (args: string) =>
    spawnSync('/bin/sh', ['-c', `exec 0<&- 1>&- 2>&-; exec ${BIN} ${args}`], { env: {}, encoding: 'utf8', timeout: 30_000 }).status;
  t.equal(sh(`-s ${s} create ab`), 0, 'create');
  t.same(ids(s), ['ab'], 'stored');
  t.equal(sh(`-f -s ${s} check ab`), 0, 'check with -f');
  t.equal(sh(`-f -s ${s} check cd`), 255, 'a refusal logged to a closed stderr');
  t.equal(sh(`-s ${s} frob`), 218, 'unknown command logged to syslog');
  t.equal(sh(`-h`), 1, 'usage to a closed stdout');
  t.equal(sh(`-f -s ${s} remove ab`), 0);
  t.same(ids(s), []);
  t.same(fs.readdirSync(s).sort(), ['clients.id', 'clients.journal', 'clients.snap'], 'no stray file (a log written into the store through fd 1 or 2)');
});
