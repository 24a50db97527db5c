// Administrator commands, run as `node dist/cli.js ...`: list, status,
// verify (and --repair), compact, on stores the kernel commands wrote, on the
// damaged stores of fixtures/stores/, and while writers run. Import and export
// (SQLite) are in test/admin-sqlite.ts.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { fsWarnings, lockState, mountOf } from '../lib/admin/inspect';
import { printableId, table } from '../lib/admin/util';
import { Store } from '../lib/store/store';
import { decodeJournalEntry, encodeJournalEntry } from '../lib/store/format';
import { TEST_RUNTIME } from './lib/runtime';
import { adminSandbox, type Run } from './lib/admin';
import type { Expect } from '../fixtures/stores/expect';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

const mounts: string[] = [];
const box = adminSandbox('nfsdcltrack-admin-', () => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
});
const { fresh, baseEnv } = box;
const NODE = ['-u', 'NODE_OPTIONS', TEST_RUNTIME];
const TMP = box.tmp;
const run = (args: string[], env: Record<string, string> = {}): Run => box.run(args, env, TEST_RUNTIME, 60_000);
const hex = (s: string) => Buffer.from(s).toString('hex');
const SESSION = { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' };

/** A store written by the kernel commands. */
function kernelStore(): { dir: string; ids: string[] } {
  const dir = fresh('store');
  const ids = [hex('Linux NFSv4.2 alpha.example.org'), hex('Linux NFSv4.1 beta.example.org'), '00ff10fe', ''];
  t.equal(run(['-s', dir, 'init']).status, 0);
  t.equal(run(['-s', dir, 'create', ids[0]], SESSION).status, 0);
  t.equal(run(['-s', dir, 'create', ids[1]], SESSION).status, 0);
  t.equal(run(['-s', dir, 'create', ids[2]]).status, 0);
  t.equal(run(['-s', dir, 'create', ids[3]]).status, 0);
  t.equal(run(['-s', dir, 'create', hex('gone')]).status, 0);
  t.equal(run(['-s', dir, 'remove', hex('gone')]).status, 0);
  return { dir, ids };
}

t.test('--help and usage errors', async (t) => {
  for (const cmd of ['list', 'status', 'verify', 'compact', 'import', 'export']) {
    const r = run([cmd, '--help']);
    t.equal(r.status, 0, `${cmd} --help`);
    t.match(r.stdout, new RegExp(`^Usage: nfsdcltrack \\[options\\] ${cmd}`), `${cmd} --help prints its usage`);
    t.match(r.stdout, /-s, --storagedir DIR/);
    t.equal(run(['-h', cmd]).status, 0, `-h before ${cmd}`);
  }
  t.equal(run(['list', '--bogus']).status, 2, 'unknown option');
  t.match(run(['list', '--bogus']).stderr, /unknown option '--bogus'/);
  t.equal(run(['-s', fresh(), 'list', 'extra']).status, 2, 'extra operand');
  t.equal(run(['-s', fresh(), 'compact', '--json']).status, 2, 'option of another command');
  t.equal(run(['-s', fresh(), 'import']).status, 2, 'import without PATH');
  t.equal(run(['-s', fresh(), 'status', '--boot-time', 'yesterday']).status, 2, 'bad --boot-time');
  t.equal(run(['list', '-s']).status, 2, '-s without its argument');
  // Long options may be abbreviated, as GNU getopt allows, and given as --opt=value.
  const { dir } = kernelStore();
  t.equal(run(['--stor', dir, 'list', '--js']).status, 0, 'abbreviated options');
  t.equal(run([`--storagedir=${dir}`, 'list']).status, 0, '--storagedir=DIR');
  t.equal(run(['-s', path.join(dir, 'nope'), 'list']).status, 1, 'missing storage dir');
});

t.test('list: people and --json', async (t) => {
  const { dir, ids } = kernelStore();
  const r = run(['-s', dir, 'list']);
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^ID +VERSION +TIME +EPOCHS +PRINCHASH +CLIENT$/);
  t.equal(lines.length, 5, 'a header and one line per client; the removed one is gone');
  t.match(lines[1], /^\(empty\) +4\.0 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +1 +- +$|^\(empty\) +4\.0 +\S+Z +1 +-/);
  t.match(lines[2], /^00ff10fe +4\.0 +\S+Z +1 +- +-$/, 'binary id: no text; epoch 1, no princhash');
  t.match(lines[3], /^4c696e7578204e465376342e3120626574612e6578616d706c652e6f7267 +4\.1\+ +\S+Z +1 +- +Linux NFSv4\.1 beta\.example\.org$/);
  // columns align: every line has TIME at the same offset
  const at = lines[0].indexOf('TIME');
  for (const l of lines.slice(1)) t.match(l.slice(at), /^\d{4}-/);
  const j = run(['-s', dir, 'list', '--json']);
  t.equal(j.status, 0);
  const doc = JSON.parse(j.stdout);
  t.same(Object.keys(doc), ['storagedir', 'store_id', 'healthy', 'problems', 'count', 'epochs', 'clients']);
  t.same(doc.epochs, { current: 1, recovery: 0 });
  t.equal(doc.count, 4);
  t.same(doc.clients.map((c: { id: string }) => c.id), ['', ids[2], ids[1], ids[0]], 'sorted by id (LC_ALL=C order of the hex)');
  const beta = doc.clients[2];
  t.same(Object.keys(beta), ['id', 'name', 'time', 'epoch', 'version', 'cld_epochs', 'may_reclaim']);
  t.same(beta.cld_epochs, [{ epoch: 1, princhash: null }]);
  t.equal(beta.may_reclaim, false, 'not in grace');
  t.equal(beta.name, 'Linux NFSv4.1 beta.example.org');
  t.equal(beta.version, '4.1+');
  t.equal(beta.time, new Date(beta.epoch * 1000).toISOString().replace('.000Z', 'Z'));
  t.equal(doc.clients[1].name, null);
  t.equal(doc.clients[1].version, '4.0');
});

t.test('printable ids and aligned tables', async (t) => {
  t.equal(printableId(hex('Linux NFSv4.2 host')), 'Linux NFSv4.2 host');
  t.equal(printableId(hex('héllo wörld')), 'héllo wörld');
  t.equal(printableId('00'), null, 'NUL');
  t.equal(printableId(hex('a\x1b[31mred')), null, 'an escape sequence never reaches a terminal');
  t.equal(printableId('ff'), null, 'not UTF-8');
  t.equal(table([['a', 'bb', 'c'], ['ccc', 'd', 'e']]), 'a    bb  c\nccc  d   e\n');
  const long = 'x'.repeat(100);
  t.equal(table([['a', 'b'], [long, 'c'], ['d', 'e']]), `a  b\n${long}  c\nd  e\n`, 'an overlong cell does not widen its column');
});

t.test('status', async (t) => {
  const { dir } = kernelStore();
  const now = Math.floor(Date.now() / 1000);
  const r = run(['-s', dir, 'status', '--boot-time', String(now + 100)]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^storage dir: +\S+/m);
  t.match(r.stdout, /^clients: +4 \(v4\.0: 2, v4\.1\+: 2\)$/m);
  t.match(r.stdout, /^older than boot: +4$/m);
  t.match(r.stdout, /^still to reclaim: +4 /m);
  t.match(r.stdout, /^journal: +gen 1, 6 entries, \d+ B/m);
  t.match(r.stdout, /^snapshot: +gen 1, 0 record\(s\)/m);
  t.match(r.stdout, /^lock: +free$/m);
  t.match(r.stdout, /^format: +v2$/m);
  const j = JSON.parse(run(['-s', dir, 'status', '--json', '--boot-time', '1']).stdout);
  t.equal(j.clients, 4);
  t.equal(j.v40, 2);
  t.equal(j.v41, 2);
  t.equal(j.olderThanBoot, 0);
  t.equal(j.reclaiming, 2, 'after a boot at time 1, only the v4.0 clients still have to reclaim');
  t.equal(j.bootTimeFrom, 'option');
  t.equal(j.journal.entries, 6);
  t.equal(j.lock.state, 'free');
  t.equal(j.healthy, true);
  // compaction folds the journal
  const c = run(['-s', dir, 'compact']);
  t.equal(c.status, 0, c.stderr);
  t.match(c.stdout, /6 journal entries folded into snapshot gen 2 \(4 record\(s\)\)/);
  const j2 = JSON.parse(run(['-s', dir, 'status', '--json']).stdout);
  t.equal(j2.journal.entries, 0);
  t.equal(j2.snapshot.gen, 2);
  t.equal(j2.snapshot.records, 4);
  t.equal(j2.bootTimeFrom, 'machine');
  t.equal(run(['-s', dir, 'verify']).status, 0);

  // leftovers and a journal past its threshold
  fs.writeFileSync(path.join(dir, 'clients.snap.tmp'), 'partial');
  for (let i = 0; i < 8; i++) run(['-s', dir, 'create', hex(`client ${i}`)], { NFSDCLTRACK_COMPACT_BYTES: '100000' });
  const w = run(['-s', dir, 'status'], { NFSDCLTRACK_COMPACT_BYTES: '200' });
  t.match(w.stdout, /leftover temporary file\(s\) of an interrupted write: clients\.snap\.tmp/);
  t.match(w.stdout, /past the compaction threshold \(200 B\)/);
});

t.test('status: lock state and holder', async (t) => {
  const { dir } = kernelStore();
  const lock = path.join(dir, 'clients.lock');
  fs.mkdirSync(lock);
  t.equal(lockState(dir).state, 'held');
  let r = JSON.parse(run(['-s', dir, 'status', '--json']).stdout);
  t.equal(r.lock.state, 'held');
  t.same(r.lock.holders, [], 'no writer process: holder unknown');
  // A process that looks like a writer on this store is named as the holder.
  const fake = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', '/usr/sbin/nfsdcltrack', '-s', dir, 'create', '00'], { stdio: 'ignore' });
  try {
    await new Promise((res) => setTimeout(res, 300));
    fs.utimesSync(lock, new Date(), new Date());
    const s = run(['-s', dir, 'status']);
    t.match(s.stdout, new RegExp(`^lock: +held for \\d+s by pid ${fake.pid} \\(-s \\S+ create 00\\) on ${os.hostname()}$`, 'm'));
  } finally {
    fake.kill();
  }
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  r = JSON.parse(run(['-s', dir, 'status', '--json']).stdout);
  t.equal(r.lock.state, 'stale');
  t.match(r.warnings.join('\n'), /stale lock/);
  fs.rmdirSync(lock);
  t.equal(lockState(dir).state, 'free');
});

t.test('status: volatile filesystems', async (t) => {
  const info = path.join(TMP, 'mountinfo');
  fs.writeFileSync(
    info,
    [
      '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      `23 22 0:30 / ${TMP} rw,nosuid shared:2 - tmpfs tmpfs rw,size=100k`,
      `24 23 0:31 / ${TMP}/with\\040space rw - nfs4 srv:/x rw`,
    ].join('\n') + '\n',
  );
  t.equal(mountOf(path.join(TMP, 'a/b/c'), info)?.fsType, 'tmpfs', 'the nearest existing ancestor decides');
  fs.mkdirSync(path.join(TMP, 'with space'));
  t.equal(mountOf(path.join(TMP, 'with space', 'd'), info)?.fsType, 'nfs4', 'escaped mount points');
  t.equal(mountOf('/usr', info)?.fsType, 'ext4');
  t.match(fsWarnings(mountOf(TMP, info)).join(''), /on tmpfs .* does not survive a reboot/);
  t.match(fsWarnings({ mountPoint: '/', fsType: 'ext4', source: '/dev/zram0', options: 'rw' }).join(''), /does not survive a reboot/);
  t.match(fsWarnings({ mountPoint: '/', fsType: 'ext4', source: '/dev/sda', options: 'ro,relatime' }).join(''), /read-only/);
  t.same(fsWarnings({ mountPoint: '/', fsType: 'xfs', source: '/dev/sda', options: 'rw' }), []);
  // A real tmpfs, when this machine lets us mount one.
  const mnt = fresh('tmpfs');
  fs.mkdirSync(mnt);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status !== 0) {
    t.comment('SKIP real tmpfs: mount not permitted here');
    return;
  }
  mounts.push(mnt);
  const dir = path.join(mnt, 'store');
  t.equal(run(['-s', dir, 'init']).status, 0);
  const r = run(['-s', dir, 'status']);
  t.match(r.stdout, /storage dir: +\S+ \(tmpfs on tmpfs/);
  t.match(r.stdout, /on tmpfs \(\S+\), which does not survive a reboot/);
});

const FIXTURES = path.join(ROOT, 'fixtures', 'stores');

t.test('verify and verify --repair on the damaged stores of fixtures/stores', async (t) => {
  for (const name of fs.readdirSync(FIXTURES).filter((d) => fs.statSync(path.join(FIXTURES, d)).isDirectory())) {
    t.test(name, async (t) => {
      const expect = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expect.json'), 'utf8')) as Expect;
      const dir = fresh(name);
      fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
      fs.rmSync(path.join(dir, 'expect.json'));
      const before = fs.readdirSync(dir).sort();
      const v = run(['-s', dir, 'verify']);
      t.equal(v.status, expect.verifyExit, `verify exit status\n${v.stdout}${v.stderr}`);
      for (const f of expect.findings) t.ok(v.stdout.split('\n').some((l) => l.startsWith(f)), `reports "${f}"`);
      if (expect.findings.length === 0) t.notMatch(v.stdout, /^clients\./m, 'no findings');
      t.same(fs.readdirSync(dir).sort(), before, 'verify changes nothing');
      // What the kernel's check grants (the store's lookup, in this process;
      // one real check through the CLI below).
      const check = (id: string): number => {
        const view = new Store({ dir }).read();
        try {
          return view.get(id) !== null ? 0 : 255;
        } finally {
          view.close();
        }
      };
      if (expect.granted[0] !== undefined) t.equal(run(['-s', dir, 'check', expect.granted[0]], SESSION).status, 0, 'the CLI agrees');
      t.equal(run(['-s', dir, 'check', expect.refused[0]], SESSION).status, 255, 'the CLI agrees');
      for (const id of expect.granted) t.equal(check(id), 0, `grants ${id || '(empty)'}`);
      for (const id of expect.refused) t.equal(check(id), 255, `refuses ${id || '(empty)'}`);
      if (!expect.repairKept) {
        const r = run(['-s', dir, 'verify', '--repair']);
        t.equal(r.status, 0);
        t.match(r.stdout, /nothing to repair/);
        return;
      }
      const snapBefore = fs.existsSync(path.join(dir, 'clients.snap')) ? fs.readFileSync(path.join(dir, 'clients.snap')) : null;
      const r = run(['-s', dir, 'verify', '--repair']);
      t.equal(r.status, 0, `repair\n${r.stdout}${r.stderr}`);
      t.match(r.stdout, new RegExp(`^repaired: ${expect.repairKept.length} record\\(s\\) kept`, 'm'));
      const lostBlock = r.stdout.split(/^lost: /m)[1] ?? '';
      const lost = lostBlock
        .split('\n')
        .slice(1)
        .map((l) => l.trim().replace(/ \(read from a damaged line.*$/, ''))
        .filter((l) => l !== '')
        .map((l) => (l === '(empty id)' ? '' : l));
      t.same(lost.sort(), [...expect.repairLost!].sort(), 'reports exactly the clients it could not prove');
      // damaged files are kept aside under a timestamped name, never deleted
      const aside = fs.readdirSync(dir).filter((f) => /\.damaged-\d{8}T\d{6}Z$/.test(f));
      t.ok(aside.length >= 1, `kept aside: ${aside.join(', ')}`);
      if (snapBefore && lost.length > 0) {
        const kept = aside.find((f) => f.startsWith('clients.snap.'));
        t.ok(kept && fs.readFileSync(path.join(dir, kept)).equals(snapBefore), 'the old snapshot survives byte for byte');
      }
      const after = run(['-s', dir, 'verify']);
      t.equal(after.status, 0, `sound after repair\n${after.stdout}`);
      const listed = JSON.parse(run(['-s', dir, 'list', '--json']).stdout).clients.map((c: { id: string }) => c.id);
      t.same(listed.sort(), [...expect.repairKept].sort(), 'exactly the proven records remain');
      for (const id of expect.repairKept) t.equal(check(id), 0, `still grants ${id || '(empty)'}`);
      for (const id of expect.repairLost!) t.equal(check(id), 255, `never grants the unproven ${id || '(empty)'}`);
      t.equal(run(['-s', dir, 'compact']).status, 0, 'a repaired store compacts');
    });
  }
});

t.test('compact and list on a damaged store', async (t) => {
  const dir = fresh('dmg');
  fs.cpSync(path.join(FIXTURES, 'journal-bad-line'), dir, { recursive: true });
  const c = run(['-s', dir, 'compact']);
  t.equal(c.status, 1);
  t.match(c.stderr, /damaged.*verify --repair/);
  const l = run(['-s', dir, 'list']);
  t.equal(l.status, 1, 'list says the store is damaged');
  t.match(l.stderr, /only the 2 client\(s\) it can prove are listed/);
  t.equal(l.stdout.trimEnd().split('\n').length, 3);
  const s = JSON.parse(run(['-s', dir, 'status', '--json']).stdout);
  t.equal(s.healthy, false);
  t.match(s.warnings.join('\n'), /damaged/);
  const empty = fresh('empty');
  fs.mkdirSync(empty);
  const v = run(['-s', empty, 'verify']);
  t.equal(v.status, 0);
  t.match(v.stdout, /no store files yet/);
});

t.test('list and status while writers run', async (t) => {
  const dir = fresh('busy');
  t.equal(run(['-s', dir, 'init']).status, 0);
  const writers: Promise<number | null>[] = [];
  const ids: string[] = [];
  // Small compaction threshold: snapshots are replaced while we read.
  const env = { ...baseEnv, ...SESSION, NFSDCLTRACK_COMPACT_BYTES: '600' };
  for (let w = 0; w < 4; w++) {
    writers.push(
      new Promise((resolve) => {
        const script = Array.from({ length: 12 }, (_, i) => {
          const id = hex(`writer ${w} client ${i}`);
          ids.push(id);
          return `"${TEST_RUNTIME}" "${CLI}" -s "${dir}" create ${id} || exit 1`;
        }).join('\n');
        // (without tap's coverage hook, as in run())
        const p = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS\n' + script], { env, stdio: 'ignore' });
        p.on('exit', (code) => resolve(code));
      }),
    );
  }
  let done = false;
  const all = Promise.all(writers).then((r) => {
    done = true;
    return r;
  });
  let reads = 0;
  let last = -1;
  while (!done || reads < 3) {
    const r = await new Promise<Run>((resolve) => {
      const p = spawn('/usr/bin/env', [...NODE, CLI, '-s', dir, 'list', '--json'], { env: baseEnv });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('exit', (code) => resolve({ status: code, stdout: out, stderr: err }));
    });
    reads++;
    t.equal(r.status, 0, `list #${reads} while writing ${r.stderr}`);
    const doc = JSON.parse(r.stdout);
    const listed: string[] = doc.clients.map((c: { id: string }) => c.id);
    t.same(listed, [...listed].sort(), 'sorted');
    t.ok(listed.every((id) => ids.includes(id)), 'nothing but written clients');
    t.ok(doc.count >= last, 'never goes back');
    last = doc.count;
    if (reads % 3 === 0) {
      const s = run(['-s', dir, 'status', '--json']);
      t.equal(s.status, 0);
      t.equal(JSON.parse(s.stdout).healthy, true);
    }
  }
  t.same(await all, [0, 0, 0, 0], 'every writer succeeded');
  const final = JSON.parse(run(['-s', dir, 'list', '--json']).stdout);
  t.equal(final.count, 48);
  t.equal(run(['-s', dir, 'verify']).status, 0);
  t.ok(reads >= 3, `${reads} reads during the writes`);
});

t.test('cld epochs: status, list, and verify of grace entries', async (t) => {
  const dir = fresh('epochs');
  fs.mkdirSync(dir);
  const store = new Store({ dir });
  const ph = 'ab'.repeat(32);
  await store.mutate((tx) => {
    tx.put('aa', { time: 5, session: true, epoch: 1, ph, older: null });
    tx.put('bb', { time: 6, session: false, epoch: 1, ph: null, older: null });
  });
  await store.mutate((tx) => tx.setEpochs({ current: 2, recovery: 1 }));
  await store.mutate((tx) => tx.put('aa', { time: 7, session: true, epoch: 2, ph: null, older: { epoch: 1, ph } }));
  const s = run(['-s', dir, 'status']);
  t.match(s.stdout, /^epochs: +current 2, recovery 1: in grace \(clients of epoch 1 may reclaim\)$/m);
  t.match(s.stdout, /^format: +v2$/m);
  t.match(JSON.parse(run(['-s', dir, 'status', '--json']).stdout), { epochs: { current: 2, recovery: 1 }, inGrace: true, formatVersion: 2 });
  const l = run(['-s', dir, 'list']).stdout.split('\n');
  t.match(l[1], /^aa +4\.1\+ +\S+Z +2,1 +-,abababab +-$/, 'both memberships, newest first, with their princhashes');
  t.match(l[2], /^bb +4\.0 +\S+Z +1 +- +-$/);
  t.equal(run(['-s', dir, 'verify']).status, 0, 'sound');
  // The grace end: bb, only in the recovery epoch, is no longer listed
  await store.mutate((tx) => tx.setEpochs({ current: 2, recovery: 0 }));
  t.same(JSON.parse(run(['-s', dir, 'list', '--json']).stdout).clients.map((c: { id: string; cld_epochs: unknown }) => [c.id, c.cld_epochs]), [['aa', [{ epoch: 2, princhash: null }]]]);
  t.match(run(['-s', dir, 'status']).stdout, /^epochs: +current 2, not in grace$/m);
  t.equal(run(['-s', dir, 'verify']).status, 0);
  // A journal whose grace entries take the epoch back, or set a record in a future epoch, is reported.
  const bad = fresh('epochs-bad');
  fs.cpSync(dir, bad, { recursive: true });
  const store2 = new Store({ dir: bad });
  await store2.mutate((tx) => tx.setEpochs({ current: 1, recovery: 0 }));
  await store2.mutate((tx) => tx.put('cc', { time: 8, session: false, epoch: 5, ph: null, older: null }));
  await store2.mutate((tx) => tx.setEpochs({ current: 7, recovery: 3 }));
  const v = run(['-s', bad, 'verify']);
  t.equal(v.status, 1, v.stdout);
  t.match(v.stdout, /clients\.journal:\d+: grace entry takes the current epoch back, from 2 to 1/);
  t.match(v.stdout, /clients\.journal:\d+: set of cc records it in epoch 5, after the current epoch 1/);
  t.match(v.stdout, /clients\.journal:\d+: grace entry makes epoch 3 the recovery epoch, but the epochs were current 1, recovery 0/);
  // prev-state checks cover the epoch fields: a prev that differs from the record only in a princhash is caught
  const forged = fresh('epochs-forged');
  fs.cpSync(dir, forged, { recursive: true });
  const jfile = path.join(forged, 'clients.journal');
  const last = decodeJournalEntry(fs.readFileSync(jfile, 'latin1').trimEnd().split('\n').pop()!)!;
  const was = { time: 7, session: true, epoch: 2, ph: null, older: { epoch: 1, ph } };
  const entry = { gen: last.gen, seq: last.seq + 1, op: 'set' as const, id: 'aa', state: { ...was, time: 9 }, prev: { ...was, older: { epoch: 1, ph: null } } };
  fs.appendFileSync(jfile, encodeJournalEntry(entry));
  const f = run(['-s', forged, 'verify']);
  t.equal(f.status, 1);
  t.match(f.stdout, /set of aa says its previous state was time 7 v4\.1\+ epoch 2 and epoch 1, but it was time 7 v4\.1\+ epoch 2 and epoch 1 princhash abababab/);
});
