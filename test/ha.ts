// High availability on one machine (docs/ha.md): two "nodes" (processes
// with their own nfs.conf, node-local state dir, host name and machine id)
// serving one store on a "shared disk" (a directory of a tmpfs, bind-mounted
// at the mount point while that node "has" the disk). Failover, a node started
// before the disk is mounted (pinned store-id, storage-mountpoint), a store
// rolled back under a node, an idle daemon that must not keep the disk busy,
// and a dead peer's lock taken over within the documented bound.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { Cmd, decodeClient, decodeHeader, encodeMessage, type ClientInfo } from '../lib/cld/codec';
import { loadCldConfig, loadTrackConfig } from '../lib/config';
import { DEFAULT_STATE_DIR, guardFor, mountGuard, mountVerdict, mustExist, noteWritten, rollbackVerdict, startServing, stateDirOf, thisNode } from '../lib/ha';
import {
  decodeSeen,
  decodeServed,
  decodeStoreId,
  encodeSeen,
  encodeServed,
  isBehind,
  pinVerdict,
  readServed,
  readStoreId,
  SERVED_KEEP,
  recordServed,
} from '../lib/store/identity';
import { DEFAULT_LOCK } from '../lib/store/lock';
import { Store } from '../lib/store/store';
import { CldDriver } from './lib/cld-driver';
import { ensureBuilt, ROOT } from './lib/built';
import { TEST_RUNTIME } from './lib/runtime';

ensureBuilt();
const CLI = path.join(ROOT, 'dist', 'cli.js');
const DAEMON = path.join(ROOT, 'dist', 'nfsdcld');
const TIMEOUT_MS = 20_000;
if (process.getuid?.() !== 0) throw new Error('test/ha.ts mounts filesystems: run it as root');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-ha-'));
const mounted: string[] = [];
const sh = (cmd: string, ...args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
t.teardown(() => {
  for (const m of mounted.reverse()) sh('umount', '-l', m);
  fs.rmSync(tmp, { recursive: true, force: true });
});
// The disks: directories of one tmpfs, so that a mount point without its disk is on another filesystem.
const disks = path.join(tmp, 'disks');
fs.mkdirSync(disks);
if (sh('mount', '-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', disks).status !== 0) throw new Error('cannot mount a tmpfs');
mounted.push(disks);

let seq = 0;
/** A mount point and a new, empty disk for it (not mounted yet). */
function site(): { mnt: string; store: string; disk: string } {
  const n = ++seq;
  const mnt = path.join(tmp, `mnt-${n}`);
  const disk = path.join(disks, `disk-${n}`);
  fs.mkdirSync(mnt);
  fs.mkdirSync(disk);
  return { mnt, store: path.join(mnt, 'nfsdcltrack'), disk };
}
function attach(disk: string, mnt: string): void {
  const r = sh('mount', '--bind', disk, mnt);
  if (r.status !== 0) throw new Error(`mount --bind ${disk} ${mnt}: ${r.stderr}`);
  mounted.push(mnt);
}
/** Unmount, as a failover does: not lazily, so a busy filesystem fails. */
function detach(mnt: string): { status: number | null; stderr: string } {
  const r = sh('umount', mnt);
  if (r.status === 0) mounted.splice(mounted.lastIndexOf(mnt), 1);
  return { status: r.status, stderr: r.stderr };
}

interface Node {
  name: string;
  state: string;
  conf: string;
  env: Record<string, string>;
}
function node(name: string, conf = ''): Node {
  const state = path.join(tmp, `state-${name}-${++seq}`);
  fs.mkdirSync(state, { mode: 0o700 });
  const file = path.join(tmp, `${name}-${seq}.conf`);
  fs.writeFileSync(file, conf);
  const env = {
    NFSDCLTRACK_CONF_FILE: file,
    NFSDCLTRACK_STATE_DIR: state,
    NFSDCLTRACK_HOSTNAME: `node-${name}`,
    NFSDCLTRACK_MACHINE_ID: `machine-${name}`,
    NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'no-syslog'),
    // The daemon's first-start import must not find this machine's databases.
    NFSDCLTRACK_NFSDCLD_DIR: path.join(tmp, 'none'),
    NFSDCLTRACK_RECOVERY_DIR: path.join(tmp, 'none'),
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  };
  return { name, state, conf: file, env };
}
const pinned = (id: string, mnt?: string) => `[nfsdcltrack]\nstore-id = ${id}\n${mnt ? `storage-mountpoint = ${mnt}\n` : ''}`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** The upcall (or an admin command) as node n runs it; -f: its log on stderr. */
function run(n: Node, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', TEST_RUNTIME, CLI, '-f', ...args], { env: { ...n.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const hex = (s: string) => Buffer.from(s).toString('hex');
const SESSION = { NFSDCLTRACK_CLIENT_HAS_SESSION: 'Y' };
const GRACE = () => ({ NFSDCLTRACK_GRACE_START: String(Math.floor(Date.now() / 1000)) });

// --- the daemon -----------------------------------------------------------------

let xid = 5000;
const msg = (cmd: number, client?: ClientInfo) => encodeMessage({ vers: 2, cmd, xid: ++xid }, client);
const named = (s: string): ClientInfo => ({ name: Buffer.from(s), princhash: null });
const status = (b: Buffer) => decodeHeader(b).status;
async function daemon(n: Node, store: string): Promise<CldDriver> {
  const pipefs = path.join(tmp, `pipefs-${++seq}`);
  fs.mkdirSync(pipefs);
  const d = await CldDriver.open(pipefs, store, { cmd: ['/usr/bin/env', '-u', 'NODE_OPTIONS', DAEMON], env: n.env });
  const v = await d.call(encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: ++xid }), TIMEOUT_MS);
  if (v.final[8] !== 2) throw new Error(`GetVersion answered ${v.final[8]}: ${d.daemonLog}`);
  return d;
}
async function graceStart(d: CldDriver): Promise<{ status: number; names: string[] }> {
  const r = await d.call(msg(Cmd.GraceStart), TIMEOUT_MS);
  const names = r.inProgress.map((m) => {
    const c = decodeClient(m);
    if (!c.ok) throw new Error(c.why);
    return c.client.name.toString();
  });
  return { status: status(r.final), names: names.sort() };
}
const cld = async (d: CldDriver, cmd: number, who?: string) => status((await d.call(msg(cmd, who === undefined ? undefined : named(who)), TIMEOUT_MS)).final);
const EREMOTEIO = -121;

// --- the store's own facts, as pure functions ----------------------------------

t.test('codecs: clients.id, clients.served, the node-local note; positions', async (t) => {
  const id = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
  const idLine = `#nfsdcltrack-store v1 id=${id} created=1796190000`;
  const { crcHex } = await import('../lib/crc32');
  t.equal(decodeStoreId(`${idLine} ${crcHex(idLine)}\n`), id, 'a sealed id line');
  t.equal(decodeStoreId(`${idLine} 00000000\n`), null, 'a bad CRC: no id');
  t.equal(decodeStoreId(`${idLine.replace(id, 'not-a-uuid')} ${crcHex(idLine.replace(id, 'not-a-uuid'))}\n`), null, 'not a UUID: no id');
  const seen = { gen: 12, seq: 345, time: 1796190001 };
  t.same(decodeSeen(encodeSeen(seen, seen.time)), seen, 'the note round-trips');
  t.equal(decodeSeen(encodeSeen(seen, seen.time).replace('345', '346')), null, 'an edited note is damaged');
  const served = { time: 1796190002, host: 'node a\tx', machineId: 'abc' };
  t.same(decodeServed(encodeServed(served).trimEnd()), { ...served, host: 'node_a_x' }, 'spaces and controls in a host name become _');
  t.ok(isBehind({ gen: 2, seq: 9 }, { gen: 3, seq: 0 }), 'an older generation is behind');
  t.ok(isBehind({ gen: 3, seq: 1 }, { gen: 3, seq: 2 }), 'fewer entries of the same generation are behind');
  t.notOk(isBehind({ gen: 3, seq: 0 }, { gen: 2, seq: 50 }), 'a newer generation is ahead, whatever its entries');
  t.notOk(isBehind({ gen: 3, seq: 2 }, { gen: 3, seq: 2 }), 'the same position is not behind');
  t.match(pinVerdict(tmp, 'yes'), /not a UUID/, 'a pin that is not a UUID refuses every store');

  const dir = path.join(tmp, 'served');
  fs.mkdirSync(dir);
  for (let i = 0; i < SERVED_KEEP + 3; i++) recordServed(dir, { time: 1796190000 + i, host: `h${i}`, machineId: `m${i}` });
  const all = readServed(dir);
  t.equal(all.length, SERVED_KEEP, `clients.served keeps the last ${SERVED_KEEP} starts`);
  t.equal(all[all.length - 1].host, `h${SERVED_KEEP + 2}`, 'the latest last');
});

t.test('nfs.conf: store-id, storage-mountpoint and state-dir, in either section', async (t) => {
  const f = path.join(tmp, 'sections.conf');
  fs.writeFileSync(f, '[nfsdcld]\nstore-id = 0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9\nstate-dir = /srv/state\n[nfsdcltrack]\nstorage-mountpoint = /srv/nfs\n');
  const env = { NFSDCLTRACK_CONF_FILE: f };
  const track = loadTrackConfig(env, () => undefined);
  const daemon = loadCldConfig(env, () => undefined);
  for (const c of [track, daemon]) {
    t.equal(c.storeId, '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9', 'store-id, lowercased (a UUID may be written in capitals)');
    t.equal(c.storageMountpoint, '/srv/nfs');
    t.equal(c.stateDir, '/srv/state');
  }
});

t.test('storage-mountpoint: the dir must be on a mount of its own, at that point', async (t) => {
  const s = site();
  fs.mkdirSync(path.join(s.disk, 'nfsdcltrack'));
  t.match(mountVerdict(s.mnt, s.mnt), /is not a mount point/, 'the disk not mounted: the bare directory is refused');
  const guard = mountGuard(s.store, s.mnt);
  t.match(guard(), /no such file|ENOENT/, 'the storage dir missing');
  attach(s.disk, s.mnt);
  t.equal(mountVerdict(s.store, s.mnt), null, 'mounted: served');
  t.equal(guard(), null, 'the guard agrees');
  t.match(mountVerdict(tmp, s.mnt), /is not on the filesystem mounted at/, 'a dir elsewhere is refused');
  t.equal(detach(s.mnt).status, 0);
  fs.mkdirSync(s.store);
  t.match(guard(), /is not a mount point/, 'the guard notices the disk went (the dir changed device)');
});

// --- failover -------------------------------------------------------------------------

t.test('failover with the upcall: node B serves what node A recorded, and status says the store moved', async (t) => {
  const s = site();
  const a = node('a');
  const b = node('b');
  attach(s.disk, s.mnt);
  t.equal(run(a, ['-s', s.store, 'init'], GRACE()).status, 0, 'A: init');
  for (const [c, env] of [['v40', {}], ['v41', SESSION], ['gone', {}]] as const) t.equal(run(a, ['-s', s.store, 'create', hex(c)], env).status, 0, `A: create ${c}`);
  t.equal(run(a, ['-s', s.store, 'remove', hex('gone')]).status, 0, 'A: remove gone');
  const id = readStoreId(s.store).id!;
  t.match(id, /^[0-9a-f-]{36}$/, 'the store got its id at creation');
  t.match(fs.readFileSync(path.join(s.store, 'clients.id'), 'latin1'), new RegExp(`^#nfsdcltrack-store v1 id=${id} created=\\d+ [0-9a-f]{8}\\n$`), 'clients.id, readable with cat');
  t.match(fs.readFileSync(path.join(a.state, `seen.${id}`), 'latin1'), /^#nfsdcltrack-seen v1 gen=1 seq=0 time=\d+ [0-9a-f]{8}\n$/, "A's note of how far it served, in A's state dir");

  // A fails; B mounts the disk. Before B's nfsd starts, status on B tells the administrator.
  t.equal(detach(s.mnt).status, 0, 'A: the disk unmounted (nothing of A holds it)');
  attach(s.disk, s.mnt);
  const before = run(b, ['-s', s.store, 'status']);
  t.equal(before.status, 0, 'B: status, exit 0 (moved is not refused)');
  t.match(before.stdout, /last served: +by node-a \(machine id machine-a; this node is node-b\)/);
  t.match(before.stdout, /the store has moved: it was last served by node-a .*nfs_server_scope/s, 'the scope warning, naming nfs_server_scope');
  t.match(before.stdout, /rpc\.nfsd -S\/--scope, nfs\.conf \[nfsd\] scope/, "and nfsd's own settings");
  t.equal(run(b, ['-s', s.store, 'init'], GRACE()).status, 0, 'B: init');
  t.equal(run(b, ['-s', s.store, 'check', hex('v40')]).status, 0, 'B: the v4.0 client of A reclaims');
  t.equal(run(b, ['-s', s.store, 'check', hex('v41')], SESSION).status, 0, 'B: the v4.1 client of A reclaims');
  t.equal(run(b, ['-s', s.store, 'check', hex('gone')], SESSION).status, 255, 'B: the client A removed is refused');
  t.equal(run(b, ['-s', s.store, 'check', hex('never')]).status, 255, 'B: a client A never recorded is refused');
  t.same(readServed(s.store).map((x) => x.host), ['node-a', 'node-b'], 'clients.served: A, then B');
  const after = run(b, ['-s', s.store, 'status', '--json']);
  const doc = JSON.parse(after.stdout);
  t.equal(doc.ha.storeId, id, 'status --json: the store id');
  t.equal(doc.ha.lastServed.host, 'node-b');
  t.equal(doc.ha.lastServed.thisNode, true);
  t.equal(doc.ha.tookOverFrom.host, 'node-a', 'B took it over from A');
  t.ok(doc.warnings.some((w: string) => /this node took it over .* from node-a .*nfs_server_scope/.test(w)), 'and is warned about the scope');
  t.equal(JSON.parse(run(b, ['-s', s.store, 'list', '--json']).stdout).store_id, id, 'list --json: "store_id"');
  t.equal(run(b, ['-s', s.store, 'init']).status, 0, 'B: init again');
  t.equal(readServed(s.store).length, 2, 'a restart on the same node adds nothing');
});

t.test("a node started before its shared disk was mounted refuses to serve, with the pin or the mount point", async (t) => {
  const s = site();
  const a = node('a');
  attach(s.disk, s.mnt);
  t.equal(run(a, ['-s', s.store, 'init']).status, 0);
  t.equal(run(a, ['-s', s.store, 'create', hex('c1')]).status, 0);
  const id = readStoreId(s.store).id!;
  t.equal(detach(s.mnt).status, 0);

  for (const [what, conf] of [['store-id', pinned(id)], ['store-id and storage-mountpoint', pinned(id, s.mnt)], ['storage-mountpoint', `[nfsdcltrack]\nstorage-mountpoint = ${s.mnt}\n`]] as const) {
    const b = node('b', conf);
    const init = run(b, ['-s', s.store, 'init'], GRACE());
    t.equal(init.status, 243, `${what}, no disk: init fails (EACCES): the kernel uses no tracker that could grant a reclaim`);
    t.match(init.stderr, /refusing to serve the store in .*(does not exist|not a mount point|no such file)/, 'loudly');
    t.equal(run(b, ['-s', s.store, 'check', hex('c1')]).status, 255, 'check refused (EPERM)');
    t.equal(run(b, ['-s', s.store, 'check', hex('c1')], SESSION).status, 255, 'session check refused');
    t.equal(run(b, ['-s', s.store, 'create', hex('c2')]).status, 135, 'create fails (EREMOTEIO)');
    t.equal(run(b, ['-s', s.store, 'remove', hex('c1')]).status, 135, 'remove fails');
    t.equal(run(b, ['-s', s.store, 'gracedone', '0']).status, 135, 'gracedone fails');
    t.notOk(fs.existsSync(s.store), 'no empty store made where the disk should be');
  }

  // The shadowed directory: the root filesystem's own store under the mount point.
  const local = node('local');
  t.equal(run(local, ['-s', s.store, 'init']).status, 0, 'a local store appears under the mount point');
  const b = node('b', pinned(id));
  const shadow = run(b, ['-s', s.store, 'init']);
  t.equal(shadow.status, 243, 'pinned: the shadowing store is refused');
  t.match(shadow.stderr, new RegExp(`holds store [0-9a-f-]{36}, not the pinned store ${id}`));
  t.equal(run(b, ['-s', s.store, 'create', hex('c2')]).status, 135);
  const st = run(b, ['-s', s.store, 'status']);
  t.equal(st.status, 1, 'status on B: exit 1');
  t.match(st.stdout, /REFUSED: .*not the pinned store/);
  t.match(st.stdout, new RegExp(`store id: +[0-9a-f-]{36} \\(store-id ${id} is pinned: REFUSED\\)`));

  // The daemon, pinned, the disk still missing (the shadow removed).
  fs.rmSync(s.store, { recursive: true });
  const bd = node('b', `[nfsdcld]\nstore-id = ${id}\n`);
  let d = await daemon(bd, s.store);
  try {
    const g = await graceStart(d);
    t.equal(g.status, EREMOTEIO, 'GraceStart fails: nfsd does not take an empty store for the truth (no skipped grace)');
    t.same(g.names, [], 'and is handed no client');
    t.equal(await cld(d, Cmd.Create, 'c2'), EREMOTEIO, 'Create fails');
    t.equal(await cld(d, Cmd.Remove, 'c1'), EREMOTEIO, 'Remove fails');
    t.equal(await cld(d, Cmd.Check, 'c1'), -13, 'Check (v0) refused, -EACCES');
    t.equal(await cld(d, Cmd.GraceDone), EREMOTEIO, 'GraceDone fails');
    t.match(d.daemonLog, /refusing to serve the store in .*does not exist/, 'the daemon says why');
    t.notMatch(d.daemonLog, /refusing to serve the store in [^\n]*refusing to serve/, 'once a line, not wrapped in itself');
    t.notOk(fs.existsSync(s.store), 'and makes no store');
  } finally {
    await d.close();
  }
  // Mounted, restarted: served.
  attach(s.disk, s.mnt);
  t.equal(run(b, ['-s', s.store, 'init'], GRACE()).status, 0, 'the disk mounted: the upcall serves');
  t.equal(run(b, ['-s', s.store, 'check', hex('c1')]).status, 0, 'and c1 reclaims');
  d = await daemon(bd, s.store);
  try {
    t.same(await graceStart(d), { status: 0, names: ['c1'] }, 'the daemon restarted: c1 may reclaim');
  } finally {
    await d.close();
  }
});

t.test('a store rolled back behind what this node served is refused, and said so', async (t) => {
  const s = site();
  const a = node('a');
  const old = path.join(disks, `old-${++seq}`);
  attach(s.disk, s.mnt);
  t.equal(run(a, ['-s', s.store, 'init']).status, 0);
  t.equal(run(a, ['-s', s.store, 'create', hex('x1')]).status, 0);
  t.equal(sh('cp', '-a', s.disk, old).status, 0, 'an image of the disk, taken now');
  t.equal(run(a, ['-s', s.store, 'create', hex('x2')]).status, 0);
  t.equal(run(a, ['-s', s.store, 'remove', hex('x1')]).status, 0, 'x1 removed: the old image would let it reclaim');
  t.equal(run(a, ['-s', s.store, 'gracedone', '0']).status, 0, 'gracedone: a new generation, noted');
  const id = readStoreId(s.store).id!;
  t.match(fs.readFileSync(path.join(a.state, `seen.${id}`), 'latin1'), /gen=2 seq=0 /, 'the note moved to gen 2');

  t.equal(detach(s.mnt).status, 0);
  attach(old, s.mnt);
  const init = run(a, ['-s', s.store, 'init'], GRACE());
  t.equal(init.status, 243, 'init on the old image fails');
  t.match(init.stderr, /refusing to serve the store in .*gen 1, entry 1, behind gen 2, entry 0 that this node served .*rolled back/);
  const st = run(a, ['-s', s.store, 'status']);
  t.equal(st.status, 1, 'status: exit 1');
  t.match(st.stdout, /position: +gen 1, entry 1; this node served it to gen 2, entry 0 .*ROLLED BACK/);
  t.match(st.stdout, new RegExp(`remove ${a.state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/seen\\.${id} to accept it`), 'and what to do');
  t.equal(JSON.parse(run(a, ['-s', s.store, 'status', '--json']).stdout).ha.rolledBack, true);
  const d = await daemon(a, s.store);
  try {
    const g = await graceStart(d);
    t.equal(g.status, EREMOTEIO, 'the daemon refuses it too');
    t.same(g.names, [], 'x1 is not handed out');
    t.match(d.daemonLog, /rolled back/);
  } finally {
    await d.close();
  }
  const other = node('b');
  t.equal(run(other, ['-s', s.store, 'init']).status, 0, 'a node with no note cannot tell (the note is per node: docs/ha.md)');
  fs.rmSync(path.join(a.state, `seen.${id}`));
  t.equal(run(a, ['-s', s.store, 'init']).status, 0, 'the note removed: the administrator accepted the old store');
});

t.test('the daemon notes how far it served when it stops, and a rollback under it is refused at its next start', async (t) => {
  const s = site();
  const a = node('a');
  const old = path.join(disks, `old-${++seq}`);
  attach(s.disk, s.mnt);
  let d = await daemon(a, s.store);
  let id: string;
  try {
    t.same(await graceStart(d), { status: 0, names: [] });
    t.equal(await cld(d, Cmd.Create, 'y1'), 0);
    id = readStoreId(s.store).id!;
    t.equal(sh('cp', '-a', s.disk, old).status, 0, 'an image with y1');
    t.equal(await cld(d, Cmd.Create, 'y2'), 0);
    t.equal(await cld(d, Cmd.Remove, 'y1'), 0);
    await d.stopDaemon('SIGTERM');
  } finally {
    await d.close();
  }
  const note = fs.readFileSync(path.join(a.state, `seen.${id}`), 'latin1');
  const journalSeq = fs.readFileSync(path.join(s.store, 'clients.journal'), 'latin1').trimEnd().split('\n').pop()!.split(' ')[1];
  t.match(note, new RegExp(`gen=1 seq=${journalSeq} `), "at SIGTERM, the note has the journal's last entry");
  t.equal(detach(s.mnt).status, 0);
  attach(old, s.mnt);
  d = await daemon(a, s.store);
  try {
    const g = await graceStart(d);
    t.equal(g.status, EREMOTEIO, 'refused: y1 would be handed out again');
    t.same(g.names, []);
    t.match(d.daemonLog, /rolled back/);
  } finally {
    await d.close();
  }
});

t.test('an idle daemon holds nothing on the shared disk: it unmounts without stopping the daemon', async (t) => {
  const s = site();
  const a = node('a');
  attach(s.disk, s.mnt);
  const d = await daemon(a, s.store);
  try {
    t.same(await graceStart(d), { status: 0, names: [] });
    for (let i = 0; i < 20; i++) t.equal(await cld(d, Cmd.Create, `busy-${i}`), 0);
    t.equal(await cld(d, Cmd.GraceDone), 0);
    await new Promise((r) => setTimeout(r, 300));
    const u = detach(s.mnt);
    t.equal(u.status, 0, `umount (not lazy) succeeds with the daemon running${u.stderr ? `: ${u.stderr}` : ''}`);
    attach(s.disk, s.mnt);
    t.equal(await cld(d, Cmd.Create, 'after'), 0, 'the same daemon serves the disk once it is back');
    t.ok(fs.readFileSync(path.join(s.store, 'clients.journal'), 'latin1').includes(hex('after')), 'onto the disk');
  } finally {
    await d.close();
  }
});

t.test("a dead peer's lock is taken over within the documented bound (staleMs, by its heartbeat)", async (t) => {
  const s = site();
  const a = node('a');
  const b = node('b');
  attach(s.disk, s.mnt);
  t.equal(run(a, ['-s', s.store, 'init']).status, 0);
  // A's daemon died mid-write on its node: its lock names a boot id this node does not have, its heartbeat just refreshed.
  const lock = path.join(s.store, 'clients.lock');
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'owner.4242.123456.00000000-0000-4000-8000-000000000000:4026531836.deadpeer'), '');
  const t0 = Date.now();
  t.equal(run(b, ['-s', s.store, 'create', hex('b1')]).status, 0, 'B: create succeeds');
  const waited = Date.now() - t0;
  t.ok(waited >= DEFAULT_LOCK.staleMs - 500, `B waited for the heartbeat to go stale (${waited} ms)`);
  t.ok(waited < DEFAULT_LOCK.waitMs, `and took the lock over before giving up (${waited} ms < ${DEFAULT_LOCK.waitMs} ms)`);
  t.notOk(fs.existsSync(lock), 'no lock left');
});

/** Node a serving a new store on its mounted disk, with one client recorded. */
function withClient(client: string): { s: ReturnType<typeof site>; a: Node; id: string } {
  const s = site();
  const a = node('a');
  attach(s.disk, s.mnt);
  const r = run(a, ['-s', s.store, 'create', hex(client)]);
  if (r.status !== 0) throw new Error(`create ${client}: ${r.status} ${r.stderr}`);
  return { s, a, id: readStoreId(s.store).id! };
}

t.test("the administrator's write commands honour the pin: compact, import, verify --repair and remove refuse another store", async (t) => {
  const { s, a, id } = withClient('d1');
  const db = path.join(tmp, `export-${++seq}.sqlite`);
  t.equal(run(a, ['-s', s.store, 'export', db]).status, 0);
  t.equal(detach(s.mnt).status, 0);

  // No disk: nothing is made where it should be.
  const b = node('b', pinned(id));
  for (const args of [['import', db], ['import', '--merge', db], ['compact'], ['verify', '--repair']]) {
    const r = run(b, ['-s', s.store, ...args]);
    t.not(r.status, 0, `no disk: ${args.join(' ')} fails`);
    t.notOk(fs.existsSync(s.store), `and makes no store (${args.join(' ')})`);
  }
  t.match(run(b, ['-s', s.store, 'import', db]).stderr, /does not exist, so it does not hold the pinned store/, 'import says why');

  // The shadowing local store: another id, left as it is.
  const local = node('local');
  t.equal(run(local, ['-s', s.store, 'create', hex('l1')]).status, 0);
  t.equal(run(local, ['-s', s.store, 'create', hex('l2')]).status, 0);
  const files = () => Object.fromEntries(fs.readdirSync(s.store).sort().map((f) => [f, fs.readFileSync(path.join(s.store, f), 'latin1')]));
  const before = files();
  for (const args of [['import', db], ['import', '--merge', db], ['compact'], ['remove', hex('l1')]]) {
    const r = run(b, ['-s', s.store, ...args]);
    t.not(r.status, 0, `pinned, another store: ${args.join(' ')} refused`);
    t.match(r.stderr, /not the pinned store/, `and says why (${args.join(' ')})`);
  }
  const m = node('m', `[nfsdcltrack]\nstorage-mountpoint = ${s.mnt}\n`);
  t.match(run(m, ['-s', s.store, 'compact']).stderr, /not a mount point/, 'storage-mountpoint alone: compact refused on the local directory');
  // A damaged line, so that --repair would write.
  const snap = path.join(s.store, 'clients.journal');
  fs.appendFileSync(snap, 'garbage line\n');
  const damaged = files();
  const rep = run(b, ['-s', s.store, 'verify', '--repair']);
  t.equal(rep.status, 1, 'verify --repair refused');
  t.match(rep.stderr + rep.stdout, /not the pinned store/);
  t.same(files(), damaged, 'nothing written by the refused repair');
  fs.writeFileSync(snap, before['clients.journal']);
  t.same(files(), before, 'nothing written by the refused commands');

  // The pinned store itself: served.
  fs.rmSync(s.store, { recursive: true });
  attach(s.disk, s.mnt);
  t.equal(run(b, ['-s', s.store, 'compact']).status, 0, 'the pinned store: compact');
  t.equal(run(b, ['-s', s.store, 'import', '--merge', db]).status, 0, 'import --merge');
  t.equal(run(b, ['-s', s.store, 'verify', '--repair']).status, 0, 'verify --repair');
  t.equal(readStoreId(s.store).id, id);
});

t.test('the id survives compaction, export and import, and an older store gets one at init', async (t) => {
  const { s, a, id } = withClient('k1');
  t.equal(run(a, ['-s', s.store, 'compact']).status, 0);
  const db = path.join(tmp, `export-${++seq}.sqlite`);
  t.equal(run(a, ['-s', s.store, 'export', db]).status, 0);
  t.equal(run(a, ['-s', s.store, 'create', hex('k2')]).status, 0);
  t.equal(run(a, ['-s', s.store, 'import', '--merge', db]).status, 0);
  t.equal(readStoreId(s.store).id, id, 'the same id after compaction and import');

  // A store from before the id: no clients.id, until its next init.
  fs.rmSync(path.join(s.store, 'clients.id'));
  const b = node('b', pinned(id));
  t.equal(run(b, ['-s', s.store, 'init']).status, 243, 'pinned to an id the store does not have: refused');
  t.equal(run(a, ['-s', s.store, 'check', hex('k1')]).status, 0, 'unpinned, the store is read as before');
  t.equal(readStoreId(s.store).id, null, 'a check gives it no id (nothing on the hot path)');
  t.equal(run(a, ['-s', s.store, 'init']).status, 0, 'init');
  const fresh = readStoreId(s.store).id!;
  t.match(fresh, /^[0-9a-f-]{36}$/, 'gives the store an id');
  t.not(fresh, id, 'a new one');
  fs.writeFileSync(path.join(s.store, 'clients.id'), 'garbage\n');
  const pinnedB = node('b', pinned(fresh));
  t.match(run(pinnedB, ['-s', s.store, 'init']).stderr, /clients\.id is damaged/, 'a damaged id is refused when pinned');
  const st = run(a, ['-s', s.store, 'status']);
  t.match(st.stdout, /clients\.id is damaged/, 'status says so');
  t.equal(run(a, ['-s', s.store, 'init']).status, 0, 'unpinned, a damaged id does not stop the store');
  t.equal(fs.readFileSync(path.join(s.store, 'clients.id'), 'latin1'), 'garbage\n', 'and is kept as it was, for the administrator');
});

t.test('the rollback verdict, and the library refusing a pinned store', async (t) => {
  const state = path.join(tmp, `state-lib-${++seq}`);
  fs.mkdirSync(state);
  const id = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
  t.equal(rollbackVerdict(state, id, { gen: 1, seq: 0 }), null, 'no note: nothing to compare with');
  fs.writeFileSync(path.join(state, `seen.${id}`), encodeSeen({ gen: 3, seq: 4 }, 1796190000));
  t.equal(rollbackVerdict(state, id, { gen: 3, seq: 4 }), null, 'at the note');
  t.match(rollbackVerdict(state, id, { gen: 3, seq: 3 }), /rolled back/, 'behind it');
  fs.writeFileSync(path.join(state, `seen.${id}`), 'damaged\n');
  t.equal(rollbackVerdict(state, id, { gen: 1, seq: 0 }), null, 'a damaged note proves nothing');
  const dir = path.join(tmp, `lib-${++seq}`);
  const store = new Store({ dir, storeId: id });
  fs.mkdirSync(dir);
  await t.rejects(store.mutate((tx) => tx.put('aa', { time: 1, session: false })), /holds no store id, not the pinned store/, 'a pinned store makes no new store');
  t.throws(() => store.read(), /refusing to serve the store/, 'nor reads one');
  t.same(fs.readdirSync(dir), [], 'and writes nothing');
});

t.test('startServing and the notes, in process', async (t) => {
  const dir = path.join(tmp, `inproc-${++seq}`);
  const state = path.join(tmp, `inproc-state-${seq}`);
  fs.mkdirSync(state);
  const lines: string[] = [];
  const log = { error: (m: string) => lines.push(`E ${m}`), warn: (m: string) => lines.push(`W ${m}`), debug: (m: string | (() => string)) => lines.push(`D ${typeof m === 'function' ? m() : m}`) };
  const env = { NFSDCLTRACK_STATE_DIR: state, NFSDCLTRACK_HOSTNAME: 'inproc', NFSDCLTRACK_MACHINE_ID: 'm-inproc' };
  const store = new Store({ dir, compactBytes: 1 });
  fs.mkdirSync(dir);
  t.equal(await startServing(store, { log, env, ha: {}, now: () => 1796190000 }), null, 'a new store is served');
  const id = readStoreId(dir).id!;
  t.same(readServed(dir), [{ time: 1796190000, host: 'inproc', machineId: 'm-inproc' }], 'this node recorded');
  t.match(fs.readFileSync(path.join(state, `seen.${id}`), 'latin1'), /gen=0 seq=0 time=1796190000 /, 'the note, at the position served (no files yet)');
  await store.mutate((tx) => tx.put('aa', { time: 1796190001, session: false }));
  t.same(store.lastWritten, { gen: 2, seq: 0 }, 'a write that compacted (compactBytes 1): a new generation');
  noteWritten(store, state, log, 1796190002);
  t.match(fs.readFileSync(path.join(state, `seen.${id}`), 'latin1'), /gen=2 seq=0 time=1796190002 /, 'noted');
  noteWritten(store, state, log, 1796190003);
  t.match(fs.readFileSync(path.join(state, `seen.${id}`), 'latin1'), /time=1796190002 /, 'the same position is not noted again');
  // The store put back to an older image, under a running server and then at a start.
  fs.writeFileSync(path.join(state, `seen.${id}`), encodeSeen({ gen: 9, seq: 0 }, 1796190004));
  noteWritten(store, state, log, 1796190005);
  t.ok(lines.some((l) => /^E .*rolled back while in use/.test(l)), 'a server writing behind its note says so');
  t.match(fs.readFileSync(path.join(state, `seen.${id}`), 'latin1'), /gen=9 /, 'and keeps the note');
  t.match(await startServing(store, { log, env, ha: {} }), /^store .* it was rolled back/, 'a start behind the note is refused');
  fs.rmSync(state, { recursive: true });
  t.equal(await startServing(store, { log, env, ha: {} }), null, 'no state dir: served, nothing to compare with');
  t.ok(lines.some((l) => /^D no state dir/.test(l)), 'said at debug level');
  t.notOk(fs.existsSync(state), 'the state dir is not made');
  t.equal(stateDirOf({}, {}), DEFAULT_STATE_DIR);
  t.equal(stateDirOf({}, { stateDir: '/x' }), '/x');
  t.equal(stateDirOf({ NFSDCLTRACK_STATE_DIR: '/y' }, { stateDir: '/x' }), '/y', 'the test hook first');
  t.notOk(mustExist({ stateDir: '/x' }), 'state-dir alone does not pin');
  t.ok(mustExist({ storeId: id }) && mustExist({ storageMountpoint: '/srv' }));
  t.equal(guardFor(dir, {}), undefined, 'no guard without storage-mountpoint');
  const me = thisNode({});
  t.equal(me.host, os.hostname(), 'the host name');
  t.ok(me.machineId.length > 0, 'a machine id (/etc/machine-id, else the host name)');
  const pinnedStore = new Store({ dir, storeId: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9' });
  t.match(await startServing(pinnedStore, { log, env, ha: {} }), /not the pinned store/, 'a pinned start on another store is refused');
});
