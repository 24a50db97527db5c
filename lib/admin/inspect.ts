// `list` and `status`: read-only, lock-free (Store.read()), so they work
// while the kernel's upcalls write.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FORMAT_VERSION, type ClientRecord, type Epochs } from '../store/format';
import { memberships, recoveryMembership } from '../tracking';
import { mountOf, mountVerdict, rollbackVerdict, stateDirOf, thisNode, type MountInfo } from '../ha';
import { loadTrackConfig } from '../config';
import { pinVerdict, readSeen, readServed, readStoreId, seenPath, type Position, type Served } from '../store/identity';
import { lockVerdict } from '../store/lock';
import { compactThreshold } from '../store/policy';
import { DEFAULT_COMPACT_BYTES, JOURNAL_NAME, SNAPSHOT_NAME, SNAPSHOT_TMP_NAME, Store, type StoreView } from '../store/store';
import { LEGACY_DB_NAME } from './sqlite';
import { analyzeStore, provenRecords } from './verify';
import { age, bytes, isoTime, machineBootTime, printableId, table, versionOf } from './util';

/** Every record the view proves, sorted; `unsorted` when the snapshot had to be re-sorted. */
export function viewRecords(store: Store, view: StoreView): { records: ClientRecord[]; damagedLines: number; unsorted: boolean } {
  try {
    const records = [...store.records(view)];
    return { records, damagedLines: view.snapshot?.damagedSeen ?? 0, unsorted: false };
  } catch {
    // records() refuses an unsorted snapshot: read it line by line instead.
    const a = analyzeStore(store.dir);
    return { records: provenRecords(view, a, false), damagedLines: a.snapshot?.damagedKeys.length ?? 0, unsorted: true };
  }
}

export interface ListedClient {
  id: string;
  name: string | null;
  time: string;
  /** The record's time in seconds (named before the cld epochs were). */
  epoch: number;
  version: '4.0' | '4.1+';
  /** The cld epochs it is recorded in, newest first. */
  cld_epochs: { epoch: number; princhash: string | null }[];
  /** Recorded in the recovery epoch: may reclaim in the grace period in progress. */
  may_reclaim: boolean;
}

export const listed = (r: ClientRecord, ep: Epochs): ListedClient => ({
  id: r.id,
  name: printableId(r.id),
  time: isoTime(r.time),
  epoch: r.time,
  version: versionOf(r.session),
  cld_epochs: memberships(r, ep).map((m) => ({ epoch: m.epoch, princhash: m.ph })),
  may_reclaim: recoveryMembership(r, ep) !== null,
});

export interface ListResult {
  text: string;
  warnings: string[];
  ok: boolean;
}

export function list(store: Store, json: boolean): ListResult {
  const view = store.read();
  try {
    const { records, damagedLines, unsorted } = viewRecords(store, view);
    const warnings: string[] = [];
    if (!view.healthy) warnings.push(`the store is damaged (${view.problems.join('; ')}): only the ${records.length} client(s) it can prove are listed, and only they may reclaim; run 'nfsdcltrack verify'`);
    if (damagedLines > 0) warnings.push(`${damagedLines} damaged snapshot line(s): those clients are not listed and may not reclaim; run 'nfsdcltrack verify'`);
    if (unsorted) warnings.push(`the snapshot is out of order: run 'nfsdcltrack verify'`);
    const ok = view.healthy && damagedLines === 0 && !unsorted;
    if (json) {
      const ep = view.epochs;
      const doc = { storagedir: store.dir, store_id: readStoreId(store.dir).id, healthy: ok, problems: warnings, count: records.length, epochs: ep, clients: records.map((r) => listed(r, ep)) };
      return { text: JSON.stringify(doc, null, 2) + '\n', warnings: [], ok };
    }
    const rows: string[][] = [['ID', 'VERSION', 'TIME', 'EPOCHS', 'PRINCHASH', 'CLIENT']];
    for (const r of records) {
      const c = listed(r, view.epochs);
      const epochs = c.cld_epochs.map((m) => String(m.epoch)).join(',');
      const ph = c.cld_epochs.map((m) => (m.princhash === null ? '-' : m.princhash.slice(0, 8))).join(',');
      rows.push([c.id === '' ? '(empty)' : c.id, c.version, c.time, epochs, ph, c.name ?? '-']);
    }
    return { text: records.length > 0 ? table(rows) : '', warnings, ok };
  } finally {
    view.close();
  }
}

// --- status -----------------------------------------------------------------

export { mountOf, type MountInfo } from '../ha';

const VOLATILE = new Set(['tmpfs', 'ramfs', 'devtmpfs', 'hugetlbfs', 'proc', 'sysfs']);
const NETWORK = new Set(['nfs', 'nfs4', 'cifs', 'smb3', '9p', 'ceph', 'glusterfs', 'fuse.sshfs', 'afs']);

export function fsWarnings(m: MountInfo | null): string[] {
  if (!m) return ['cannot tell which filesystem the storage dir is on (no /proc/self/mountinfo?)'];
  const w: string[] = [];
  if (VOLATILE.has(m.fsType) || /^\/dev\/zram/.test(m.source)) {
    w.push(`the storage dir is on ${m.fsType} (${m.mountPoint}), which does not survive a reboot: the records exist for exactly that reboot, so clients will not be able to reclaim. Use a disk-backed directory`);
  } else if (m.fsType === 'overlay') {
    w.push(`the storage dir is on an overlay filesystem (${m.mountPoint}, a container?): the records survive a reboot only if its upper layer does`);
  } else if (NETWORK.has(m.fsType) || m.fsType.startsWith('fuse')) {
    w.push(`the storage dir is on ${m.fsType} (${m.mountPoint}), a network or user-space filesystem: keep the server's own client records on local storage`);
  }
  if (m.options.split(',').includes('ro')) w.push(`the storage dir's filesystem (${m.mountPoint}) is mounted read-only: create, remove and gracedone will fail`);
  return w;
}

export interface LockState {
  state: 'free' | 'held' | 'stale';
  ageSeconds?: number;
  host: string;
  holders: { pid: number; command: string }[];
}

const WRITERS = new Set(['init', 'create', 'remove', 'check', 'gracedone', 'compact', 'import', 'verify']);

/**
 * Processes of this program that may hold the lock on `dir`. proper-lockfile's
 * lock is a bare directory that names no owner, so the holder is searched for
 * in /proc: a process running nfsdcltrack with a writing command whose storage
 * dir (its -s, or else ours) is this one. Only this host's processes are seen.
 */
export function lockHolders(dir: string, defaultDir?: string): { pid: number; command: string }[] {
  const target = path.resolve(dir);
  // A process given no -s uses the default storage dir: it can only be ours if we are that one.
  const isDefault = defaultDir !== undefined && path.resolve(defaultDir) === target;
  const out: { pid: number; command: string }[] = [];
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid);
  } catch {
    return out;
  }
  for (const pid of pids) {
    let argv: string[];
    let cwd: string;
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    const prog = argv.findIndex((a) => /(^|\/)(nfsdcltrack|cli\.js)$/.test(a));
    if (prog < 0) continue;
    const args = argv.slice(prog + 1);
    let sdir: string | undefined;
    let cmd: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === '-s' || a === '--storagedir') sdir = args[++i];
      else if (a.startsWith('--storagedir=')) sdir = a.slice(13);
      else if (a.startsWith('-s') && a.length > 2) sdir = a.slice(2);
      else if (!a.startsWith('-') && cmd === undefined) cmd = a;
    }
    if (cmd === undefined || !WRITERS.has(cmd)) continue;
    if (sdir === undefined ? !isDefault : path.resolve(cwd, sdir) !== target) continue;
    out.push({ pid: Number(pid), command: args.join(' ') });
  }
  return out;
}

export function lockState(dir: string, defaultDir?: string): LockState {
  const host = os.hostname();
  // Judged as a waiting writer would (lock.ts): by its owner file, else by its mtime.
  const v = lockVerdict(dir);
  if (!v) return { state: 'free', host, holders: [] };
  const ageSeconds = (Date.now() - v.mtimeMs) / 1000;
  if (v.dead) return { state: 'stale', ageSeconds, host, holders: [] };
  return { state: 'held', ageSeconds, host, holders: lockHolders(dir, defaultDir) };
}

export interface StatusReport {
  storagedir: string;
  filesystem: { type: string; mountPoint: string; source: string } | null;
  /** The version of the store's files (of the snapshot, else the journal; this program's when there are none). */
  formatVersion: number;
  epochs: Epochs;
  inGrace: boolean;
  healthy: boolean;
  problems: string[];
  clients: number;
  v40: number;
  v41: number;
  bootTime: number | null;
  bootTimeFrom: 'option' | 'machine' | null;
  olderThanBoot: number | null;
  reclaiming: number | null;
  snapshot: { gen: number | null; records: number | null; bytes: number; ageSeconds: number } | null;
  journal: { gen: number | null; entries: number; bytes: number; tornBytes: number; compactAtBytes: number } | null;
  lock: LockState;
  ha: HaStatus;
  warnings: string[];
}

/** The store's identity and travels, and this node's view of them (docs/ha.md). */
export interface HaStatus {
  storeId: string | null;
  /** nfs.conf store-id, when set. */
  pinned: string | null;
  position: Position;
  stateDir: string;
  /** This node's note of how far it served the store; null when it has none. */
  seen: (Position & { time: number }) | null;
  rolledBack: boolean;
  node: { host: string; machineId: string };
  /** The latest start of a server on this store (clients.served), and whether it was this node. */
  lastServed: (Served & { thisNode: boolean }) | null;
  /** When this node serves it now: the other node that served it before (a failover), if any. */
  tookOverFrom: Served | null;
  /** Why a front end configured as this node's would refuse the store (pin, mount point, rollback). */
  refused: string[];
}

const SCOPE_ADVICE =
  "clients reclaim their state on this node only if nfsd's server scope is the same on both nodes (rpc.nfsd -S/--scope, nfs.conf [nfsd] scope; the Pacemaker nfsserver agent's nfs_server_scope parameter): see docs/ha.md";

function haStatus(dir: string, position: Position, env: Record<string, string | undefined>, warnings: string[]): HaStatus {
  const conf = loadTrackConfig(env, () => undefined);
  const node = thisNode(env);
  const idState = readStoreId(dir);
  const stateDir = stateDirOf(env, conf);
  const refused: string[] = [];
  if (conf.storeId !== undefined) {
    const why = pinVerdict(dir, conf.storeId);
    if (why) refused.push(why);
  }
  if (conf.storageMountpoint !== undefined) {
    const why = mountVerdict(dir, conf.storageMountpoint);
    if (why) refused.push(why);
  }
  if (idState.damaged) warnings.push(`${dir}/clients.id is damaged: the store's identity is unknown (a pinned node refuses it); see docs/ha.md`);
  let seen: HaStatus['seen'] = null;
  let rolledBack = false;
  if (idState.id) {
    const s = readSeen(stateDir, idState.id);
    if (s === 'damaged') warnings.push(`${seenPath(stateDir, idState.id)} is damaged: this node cannot tell whether the store was rolled back`);
    else if (s !== 'none') seen = s;
    const why = rollbackVerdict(stateDir, idState.id, position);
    rolledBack = why !== null;
    if (why) refused.push(why);
  }
  if (!fs.existsSync(stateDir)) warnings.push(`this node has no state dir ${stateDir}: it cannot notice a rollback of the store (mkdir -m 0700 ${stateDir}; docs/ha.md)`);
  const served = readServed(dir);
  const last = served.length > 0 ? served[served.length - 1] : null;
  const lastServed = last ? { ...last, thisNode: last.machineId === node.machineId } : null;
  let tookOverFrom: Served | null = null;
  if (lastServed && !lastServed.thisNode) {
    warnings.push(`the store has moved: it was last served by ${last!.host} (machine id ${last!.machineId}) from ${isoTime(last!.time)}, not by this node (${node.host}); ${SCOPE_ADVICE}`);
  } else if (lastServed) {
    tookOverFrom = served.slice(0, -1).reverse().find((s) => s.machineId !== node.machineId) ?? null;
    if (tookOverFrom) {
      warnings.push(`the store has moved: this node took it over at ${isoTime(lastServed.time)} from ${tookOverFrom.host} (machine id ${tookOverFrom.machineId}, serving from ${isoTime(tookOverFrom.time)}); ${SCOPE_ADVICE}`);
    }
  }
  for (const r of refused) warnings.push(`REFUSED: ${r}`);
  return { storeId: idState.id, pinned: conf.storeId ?? null, position, stateDir, seen, rolledBack, node, lastServed, tookOverFrom, refused };
}

export function status(store: Store, env: Record<string, string | undefined>, bootTimeOpt: number | null, defaultDir?: string): StatusReport {
  const dir = store.dir;
  const warnings: string[] = [];
  const mount = mountOf(dir);
  warnings.push(...fsWarnings(mount));
  const view = store.read();
  try {
    const { records, damagedLines, unsorted } = viewRecords(store, view);
    const v40 = records.filter((r) => !r.session).length;
    const bootTime = bootTimeOpt ?? machineBootTime();
    const olderThanBoot = bootTime === null ? null : records.filter((r) => r.time < bootTime).length;
    let reclaiming: number | null = null;
    if (bootTime !== null) {
      reclaiming = records.filter((r) => !r.session || r.time < bootTime).length;
      const indexed = view.countReclaiming(bootTime);
      if (view.healthy && damagedLines === 0 && indexed !== null && indexed !== reclaiming) {
        warnings.push(`the snapshot's time index counts ${indexed} client(s) still to reclaim, the records ${reclaiming}: run 'nfsdcltrack verify'`);
      }
    }
    if (!view.healthy) warnings.push(`the store is damaged (${view.problems.join('; ')}): clients it cannot prove are refused; run 'nfsdcltrack verify --repair'`);
    if (damagedLines > 0) warnings.push(`${damagedLines} damaged snapshot line(s): those clients are refused; run 'nfsdcltrack verify --repair'`);
    if (unsorted) warnings.push(`the snapshot is out of order: run 'nfsdcltrack verify --repair'`);
    const snapStat = statOrNull(path.join(dir, SNAPSHOT_NAME));
    const journalStat = statOrNull(path.join(dir, JOURNAL_NAME));
    const compactAt = compactThreshold(Number(env.NFSDCLTRACK_COMPACT_BYTES) > 0 ? Number(env.NFSDCLTRACK_COMPACT_BYTES) : DEFAULT_COMPACT_BYTES, view.snapshot?.size ?? 0, view.snapshot?.header?.records ?? 0);
    const j = view.journal;
    if (j && j.size > compactAt) {
      warnings.push(`the journal (${bytes(j.size)}) is past the compaction threshold (${bytes(compactAt)}): compaction is not happening${view.healthy ? '' : ' because the store is damaged'}; run 'nfsdcltrack compact'${view.healthy ? '' : " after 'nfsdcltrack verify --repair'"}`);
    }
    if (j && j.parsed.tornBytes > 0) warnings.push(`the journal ends in a torn write of ${j.parsed.tornBytes} bytes (a writer was killed); ignored, and cut by the next writer`);
    warnings.push(...dirWarnings(dir));
    const lock = lockState(dir, defaultDir);
    const ha = haStatus(dir, view.position, env, warnings);
    if (lock.state === 'stale') warnings.push(`a stale lock (${age(lock.ageSeconds!)} old) is left by a writer that died; the next writer takes it over`);
    return {
      storagedir: dir,
      filesystem: mount ? { type: mount.fsType, mountPoint: mount.mountPoint, source: mount.source } : null,
      formatVersion: view.snapshot?.header?.version ?? j?.parsed.header?.version ?? FORMAT_VERSION,
      epochs: view.epochs,
      inGrace: view.epochs.recovery !== 0,
      healthy: view.healthy && damagedLines === 0 && !unsorted,
      problems: view.problems,
      clients: records.length,
      v40,
      v41: records.length - v40,
      bootTime,
      bootTimeFrom: bootTimeOpt !== null ? 'option' : bootTime !== null ? 'machine' : null,
      olderThanBoot,
      reclaiming,
      snapshot: snapStat
        ? { gen: view.snapshot?.header?.gen ?? null, records: view.snapshot?.header?.records ?? null, bytes: snapStat.size, ageSeconds: (Date.now() - snapStat.mtimeMs) / 1000 }
        : null,
      journal: journalStat && j
        ? { gen: j.parsed.gen, entries: j.parsed.entries.length, bytes: j.size, tornBytes: j.parsed.tornBytes, compactAtBytes: compactAt }
        : null,
      lock,
      ha,
      warnings,
    };
  } finally {
    view.close();
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/** Leftovers, stray copies and permissions worth an administrator's attention. */
function dirWarnings(dir: string): string[] {
  const w: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
    const st = fs.statSync(dir);
    if (st.mode & 0o077) w.push(`the storage dir's mode is ${(st.mode & 0o777).toString(8)}, not 700: other users can read the client list`);
  } catch (e) {
    w.push(`cannot read the storage dir: ${(e as Error).message}`);
  }
  const temps = names.filter((n) => n === SNAPSHOT_TMP_NAME || /^clients\.(snap|journal|id|served)\.[0-9a-f]{6,}$/.test(n));
  if (temps.length > 0) w.push(`leftover temporary file(s) of an interrupted write: ${temps.join(', ')} (harmless; replaced by the next compaction)`);
  const damaged = names.filter((n) => n.includes('.damaged-'));
  if (damaged.length > 0) w.push(`${damaged.length} damaged file(s) kept aside by a repair or compaction: ${damaged.join(', ')} (delete them once you no longer need them)`);
  if (names.includes(LEGACY_DB_NAME)) {
    w.push(`${LEGACY_DB_NAME} from nfs-utils is here: this program read it only if the store was new (at init or the daemon's first start; see 'nfsdcltrack import'); switching back to nfs-utils would use its possibly stale records (see 'nfsdcltrack export')`);
  }
  for (const n of [SNAPSHOT_NAME, JOURNAL_NAME]) {
    const st = statOrNull(path.join(dir, n));
    if (st && st.isSymbolicLink()) w.push(`${n} is a symbolic link: the store will not follow it`);
    else if (st && st.mode & 0o077) w.push(`${n} has mode ${(st.mode & 0o777).toString(8)}, not 600`);
  }
  return w;
}

export function formatStatus(r: StatusReport): string {
  const rows: string[][] = [];
  const fsText = r.filesystem ? `${r.filesystem.type} on ${r.filesystem.source}, mounted at ${r.filesystem.mountPoint}` : 'unknown filesystem';
  rows.push(['storage dir', `${r.storagedir} (${fsText})`]);
  rows.push(['format', `v${r.formatVersion}${r.formatVersion < FORMAT_VERSION ? ` (from before the cld daemon; the next compaction writes v${FORMAT_VERSION})` : ''}`]);
  const e = r.epochs;
  rows.push(['epochs', r.inGrace ? `current ${e.current}, recovery ${e.recovery}: in grace (clients of epoch ${e.recovery} may reclaim)` : `current ${e.current}, not in grace`]);
  rows.push(['store', r.healthy ? 'healthy' : `DAMAGED${r.problems.length ? ': ' + r.problems.join('; ') : ''}`]);
  rows.push(['clients', `${r.clients} (v4.0: ${r.v40}, v4.1+: ${r.v41})`]);
  if (r.bootTime !== null) {
    rows.push(['boot time', `${isoTime(r.bootTime)} (${r.bootTime}${r.bootTimeFrom === 'machine' ? ', this machine\'s; --boot-time T for another' : ''})`]);
    rows.push(['older than boot', String(r.olderThanBoot)]);
    rows.push(['still to reclaim', `${r.reclaiming} (v4.0 clients, and v4.1+ clients older than the boot time; grace may end early at 0)`]);
  }
  rows.push(['snapshot', r.snapshot ? `gen ${r.snapshot.gen ?? '?'}, ${r.snapshot.records ?? '?'} record(s), ${bytes(r.snapshot.bytes)}, written ${age(r.snapshot.ageSeconds)} ago` : 'none']);
  rows.push(['journal', r.journal ? `gen ${r.journal.gen ?? '?'}, ${r.journal.entries} entr${r.journal.entries === 1 ? 'y' : 'ies'}, ${bytes(r.journal.bytes)} (compacted past ${bytes(r.journal.compactAtBytes)})` : 'none']);
  const l = r.lock;
  let lockText: string = l.state;
  if (l.state === 'held') {
    const who = l.holders.length === 1 ? `by pid ${l.holders[0].pid} (${l.holders[0].command}) on ${l.host}` : l.holders.length > 1 ? `by one of pids ${l.holders.map((h) => h.pid).join(', ')} on ${l.host}` : `(holder not found among ${l.host}'s processes)`;
    lockText = `held for ${age(l.ageSeconds!)} ${who}`;
  } else if (l.state === 'stale') {
    lockText = `stale (last refreshed ${age(l.ageSeconds!)} ago; its holder is gone)`;
  }
  rows.push(['lock', lockText]);
  const h = r.ha;
  rows.push(['store id', `${h.storeId ?? 'none yet (made at the next init or compaction)'}${h.pinned === null ? '' : h.pinned === h.storeId ? ' (pinned by store-id)' : ` (store-id ${h.pinned} is pinned: REFUSED)`}`]);
  rows.push(['position', `gen ${h.position.gen}, entry ${h.position.seq}${h.seen ? `; this node served it to gen ${h.seen.gen}, entry ${h.seen.seq} (${isoTime(h.seen.time)})${h.rolledBack ? ': ROLLED BACK' : ''}` : ''}`]);
  if (h.lastServed) {
    const ls = h.lastServed;
    rows.push(['last served', `by ${ls.host}${ls.thisNode ? ' (this node)' : ` (machine id ${ls.machineId}; this node is ${h.node.host})`} from ${isoTime(ls.time)}`]);
  }
  if (h.tookOverFrom) rows.push(['served before', `by ${h.tookOverFrom.host} (machine id ${h.tookOverFrom.machineId}) from ${isoTime(h.tookOverFrom.time)}`]);
  let out = table(rows.map(([k, v]) => [k + ':', v]), 40);
  if (r.warnings.length > 0) out += '\nwarnings:\n' + r.warnings.map((w) => `  - ${w}\n`).join('');
  return out;
}
