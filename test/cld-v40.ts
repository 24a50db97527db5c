// A v4.0 client across two nfsd restarts. Under cld v2 the kernel checks a
// v4.0 reclaim in memory and sends no Create for it, so nfsdcld forgets the
// client at GraceDone and refuses its reclaim after the next restart (issue
// 11, measured under the real kernel). Ours asks nfsd's client list at
// GraceDone and carries the v4.0 clients that reclaimed (lib/cld/carry.ts),
// then forgets each when nfsd destroys it: here a fake /proc/fs/nfsd, first
// its parser, then the rules, then the daemon as the kernel runs it.
import t from 'tap';
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cmd, decodeClient, decodeHeader, encodeMessage } from '../lib/cld/codec';
import { heldV40Clients, holdsState, listClients, parseClientInfo } from '../lib/cld/nfsd-clients';
import { decodeCarried, encodeCarried, V40Carry } from '../lib/cld/carry';
import type { Logger } from '../lib/log';
import { graceEnded, graceStarted, liveState, reclaimedUntold, recoveryMembership } from '../lib/tracking';
import type { Epochs, RecState } from '../lib/store/format';
import { spawnSync } from 'child_process';
import { CldDriver, isolated } from './lib/cld-driver';
import { ensureBuilt, ROOT } from './lib/built';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcld-v40-'));
t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));

// As Linux 6.1's client_info_show prints them (seq_quote_mem escapes).
const info = (name: string, minor: number, status = 'confirmed') =>
  `clientid: 0x2b9c6a65a1b2c3d4\naddress: "10.0.2.15:812"\nstatus: ${status}\nseconds from last renew: 2\nname: ${name}\nminor version: ${minor}\ncallback state: UP\ncallback address: 10.0.2.15:0\n`;
const OPEN = '- 0x00000001657d3a5ab9c3e1e2: { type: open, access: rw, deny: --, superblock: "fd:10:13", owner: "open id:\\x00\\x00\\x00&\\x00\\x00\\x00\\x00\\x00\\x00\\x05\\xaf", filename: "/export/f" }\n';
const LOCK = '- 0x00000002657d3a5ab9c3e1e2: { type: lock, superblock: "fd:10:13", owner: "lock id:\\x00\\x00\\x00&\\x00\\x00\\x00\\x00", filename: "/export/f" }\n';

t.test('nfsd client info: the name decoded from its escapes, the minor version, the status', async (t) => {
  const c = parseClientInfo(info('"Linux NFSv4.0 host\\x22q\\x5c/10.0.2.2 tcp\\xff"', 0));
  t.ok(c);
  t.same(c!.name, Buffer.concat([Buffer.from('Linux NFSv4.0 host"q\\/10.0.2.2 tcp'), Buffer.from([0xff])]));
  t.equal(c!.minorVersion, 0);
  t.equal(c!.status, 'confirmed');
  t.equal(parseClientInfo(info('"x"', 2, 'courtesy'))!.status, 'courtesy');
  t.equal(parseClientInfo('clientid: 0x1\nstatus: confirmed\nminor version: 0\n'), null, 'no name: nothing to go on');
  t.equal(parseClientInfo(info('"unterminated', 0)), null, 'a name not closed by its quote');
  t.equal(parseClientInfo(info('"bad \\q escape"', 0)), null, 'an escape seq_quote_mem does not make');
  t.ok(holdsState(OPEN + LOCK));
  t.notOk(holdsState(''), 'an empty states file');
  // Any name survives the kernel's escaping.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 1024 }), (a) => {
      const esc = [...a].map((b) => (b >= 0x21 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
      return parseClientInfo(info(`"${esc}"`, 0))!.name.equals(Buffer.from(a));
    }),
  );
});

t.test('the rule: only a client that may reclaim is kept, and only once', async (t) => {
  const epochs = fc.record({ current: fc.integer({ min: 1, max: 6 }), recovery: fc.integer({ min: 0, max: 6 }) }).filter((e) => e.recovery < e.current);
  const membership = fc.record({ epoch: fc.integer({ min: 1, max: 6 }), ph: fc.constantFrom(null, 'ab'.repeat(32)) });
  const state = fc.option(
    fc.record({ time: fc.nat(), session: fc.boolean(), epoch: fc.integer({ min: 1, max: 6 }), ph: fc.constantFrom(null, 'cd'.repeat(32)), older: fc.option(membership, { nil: null }) }),
    { nil: null },
  );
  fc.assert(
    fc.property(state, epochs, (s, ep: Epochs) => {
      const prev = s as RecState | null;
      const next = reclaimedUntold(prev, ep, 7);
      const rec = recoveryMembership(prev, ep);
      const inCurrent = liveState(prev, ep) !== null && (liveState(prev, ep)!.epoch === ep.current || liveState(prev, ep)!.older?.epoch === ep.current);
      if (!rec || inCurrent) return next === null;
      // Kept: in the current epoch with the princhash it reclaimed with, so the grace end keeps it.
      const after = liveState(next, graceEnded(ep));
      return next !== null && after !== null && after.epoch === ep.current && after.ph === rec.ph && reclaimedUntold(next, ep, 8) === null;
    }),
  );
  t.equal(reclaimedUntold(null, graceStarted({ current: 1, recovery: 0 }), 1), null, 'a client with no record is never added');
});

t.test('the client list read from nfsd: confirmed v4.0 clients holding state, nothing else', async (t) => {
  const dir = path.join(scratch, 'nfsd-list');
  const add = (n: number, name: string, minor: number, states: string, status = 'confirmed') => {
    fs.mkdirSync(path.join(dir, 'clients', String(n)), { recursive: true });
    fs.writeFileSync(path.join(dir, 'clients', String(n), 'info'), info(`"${name}"`, minor, status));
    fs.writeFileSync(path.join(dir, 'clients', String(n), 'states'), states);
  };
  add(1, 'v40-lock', 0, OPEN + LOCK);
  add(2, 'v40-idle', 0, '');
  add(3, 'v41-open', 1, OPEN);
  add(4, 'v40-unconfirmed', 0, OPEN, 'unconfirmed');
  fs.mkdirSync(path.join(dir, 'clients', '5')); // gone between the listing and the read
  const r = heldV40Clients(dir);
  t.same('held' in r ? [...r.held] : r, [[Buffer.from('v40-lock').toString('hex'), '1']]);
  const all = listClients(dir, () => false);
  t.same('clients' in all ? all.clients.map((c) => c.dir).sort() : all, ['1', '2', '3', '4'], 'every client listed, without their states');
  t.match(heldV40Clients(path.join(scratch, 'no-nfsd')), { error: /cannot list .*no-nfsd\/clients/ });
});

t.test('the list of carried clients: sealed, and all or nothing', async (t) => {
  const m = new Map([
    ['aa01', '7'],
    ['bb', '12'],
  ]);
  const text = encodeCarried('boot-1:23:456', m);
  t.same(decodeCarried(text), { instance: 'boot-1:23:456', carried: m });
  t.same(decodeCarried(encodeCarried('x', new Map())), { instance: 'x', carried: new Map() });
  t.equal(decodeCarried(text.replace('aa01', 'aa02')), null, 'a line whose CRC fails: nothing trusted');
  t.equal(decodeCarried(text.slice(0, -3)), null, 'torn');
  t.equal(decodeCarried(''), null, 'empty');
});

t.test('the daemon: a v4.0 client that only reclaims is offered again, and forgotten when nfsd destroys it', async (t) => {
  ensureBuilt();
  const iso = path.join(scratch, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  const nfsd = path.join(scratch, 'nfsd');
  fs.mkdirSync(path.join(nfsd, 'clients'), { recursive: true });
  const client = (n: number, name: string, minor: number, states: string) => {
    fs.mkdirSync(path.join(nfsd, 'clients', String(n)), { recursive: true });
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'info'), info(`"${name}"`, minor));
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'states'), states);
  };
  const gone = (n: number) => fs.rmSync(path.join(nfsd, 'clients', String(n)), { recursive: true });
  const state = path.join(scratch, 'state');
  fs.mkdirSync(state, { mode: 0o700 });
  const pipefs = path.join(scratch, 'pipefs');
  fs.mkdirSync(pipefs);
  const store = path.join(scratch, 'store');
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf'), NFSDCLTRACK_NFSD_DIR: nfsd, NFSDCLTRACK_STATE_DIR: state };
  const d = await CldDriver.open(pipefs, store, { cmd: isolated(iso, [path.join(ROOT, 'dist', 'nfsdcld'), '-d']), env });
  t.teardown(() => d.close());
  let xid = 0;
  const call = async (cmd: number, name?: string) => {
    const r = await d.call(encodeMessage({ vers: 2, cmd, xid: ++xid }, name === undefined ? undefined : { name: Buffer.from(name), princhash: null }), 20_000);
    t.equal(decodeHeader(r.final).status, 0, `${['Create', 'Remove', 'Check', 'GraceDone', 'GraceStart'][cmd]} ${name ?? ''} answered 0`);
    return r.inProgress.map((m) => (decodeClient(m) as { client: { name: Buffer } }).client.name.toString()).sort();
  };
  /** A restart: nfsd's clients go with it (after the pipe: nfsd unlinks it first), then GraceStart. */
  const pipe = path.join(pipefs, 'nfsd', 'cld');
  const pty = fs.readlinkSync(pipe);
  const restart = async () => {
    fs.unlinkSync(pipe);
    if (fs.existsSync(nfsd)) for (const n of fs.readdirSync(path.join(nfsd, 'clients'))) gone(Number(n));
    await new Promise((r) => setTimeout(r, 300));
    fs.symlinkSync(pty, pipe);
    await new Promise((r) => setTimeout(r, 300));
    return call(Cmd.GraceStart);
  };
  const carriedFile = () => fs.readdirSync(state).filter((f) => f.startsWith('carried.'));
  await call(Cmd.GraceStart);
  for (const n of ['v40-lock', 'v40-idle', 'v41-open', 'v40-other']) await call(Cmd.Create, n);
  await call(Cmd.GraceDone);
  // Restart 1: all may reclaim. The v4.0 clients reclaim their locks (no
  // upcall), the idle one reclaims nothing, the v4.1 one holds state but sends
  // no RECLAIM_COMPLETE; a v4.0 client never recorded holds state too.
  t.same(await restart(), ['v40-idle', 'v40-lock', 'v40-other', 'v41-open']);
  client(1, 'v40-lock', 0, OPEN + LOCK);
  client(2, 'v40-idle', 0, '');
  client(3, 'v41-open', 1, OPEN);
  client(4, 'v40-stranger', 0, LOCK);
  client(5, 'v40-other', 0, LOCK);
  await call(Cmd.GraceDone);
  t.equal(carriedFile().length, 1, 'the carried clients are written down in the state dir');
  // Restart 2: only the clients that reclaimed are offered (nfsdcld would offer nobody);
  // their directories went with nfsd's stop, which is not their expiry.
  t.same(await restart(), ['v40-lock', 'v40-other'], 'the v4.0 clients that reclaimed, and nobody who did not');
  client(1, 'v40-lock', 0, OPEN + LOCK);
  client(5, 'v40-other', 0, LOCK);
  await call(Cmd.GraceDone);
  // nfsd destroys v40-other (its lease expired): no Remove comes from the kernel; we remove it.
  gone(5);
  const wait = async (what: string, f: () => boolean) => {
    for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 50));
    t.ok(f(), what);
  };
  const recorded = (name: string) => spawnSync(path.join(ROOT, 'dist', 'nfsdcltrack'), ['-s', store, 'list'], { encoding: 'utf8', env }).stdout.includes(name);
  await wait('the carried client nfsd destroyed is removed from the store', () => !recorded('v40-other'));
  t.ok(recorded('v40-lock'), 'the other one stays');
  // The daemon killed; nfsd destroys v40-lock meanwhile; the daemon restarted under the same nfsd.
  await d.stopDaemon('SIGKILL');
  client(6, 'v40-lock2', 0, LOCK);
  gone(1);
  d.startDaemon();
  await wait('a carried client destroyed while the daemon was down is removed at its restart', () => !recorded('v40-lock'));
  t.same(await restart(), [], 'and neither is offered at the next restart');
  // A carried client that the kernel recorded itself (Create: a new open) is the kernel's to remove.
  await call(Cmd.Create, 'v40-new');
  await call(Cmd.GraceDone);
  t.same(await restart(), ['v40-new']);
  client(7, 'v40-new', 0, LOCK);
  await call(Cmd.GraceDone);
  await call(Cmd.Create, 'v40-new');
  gone(7);
  await new Promise((r) => setTimeout(r, 500));
  t.ok(recorded('v40-new'), 'told by a Create: no longer watched, the kernel sends its Remove');
  // nfsd's list unreadable: what nfsdcld does, and one warning.
  fs.rmSync(nfsd, { recursive: true });
  t.same(await restart(), ['v40-new']);
  await call(Cmd.GraceDone);
  t.same(await call(Cmd.GraceStart), [], 'without the list the client is forgotten, as by nfsdcld');
  await call(Cmd.GraceDone);
  await call(Cmd.GraceStart);
  await call(Cmd.GraceDone);
  t.equal(d.daemonLog.match(/cannot list .*clients.*refused after the next restart/g)?.length, 1, 'said once');
});

t.test('V40Carry in process: kept, told, reset, resumed, and what it refuses to trust', async (t) => {
  const dir = path.join(scratch, 'inproc');
  const nfsd = path.join(dir, 'nfsd');
  const state = path.join(dir, 'state');
  fs.mkdirSync(path.join(nfsd, 'clients'), { recursive: true });
  fs.mkdirSync(state);
  const add = (n: number, name: string) => {
    fs.mkdirSync(path.join(nfsd, 'clients', String(n)));
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'info'), info(`"${name}"`, 0));
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'states'), LOCK);
  };
  const hex = (s: string) => Buffer.from(s).toString('hex');
  const lines: string[] = [];
  const log = { error: (m: string) => lines.push(`E ${m}`), warn: (m: string) => lines.push(`W ${m}`), debug: (m: string | (() => string)) => lines.push(`D ${typeof m === 'function' ? m() : m}`) } as unknown as Logger;
  let instance: string | null = 'boot:1:10';
  const forgotten: string[] = [];
  const file = path.join(state, 'carried.s1');
  const made: V40Carry[] = [];
  t.teardown(() => made.forEach((m) => m.close()));
  const mk = (f: string | null = file) => {
    const m = new V40Carry({ log, nfsdDir: nfsd, file: f, instance: () => instance, forget: (id) => forgotten.push(id) });
    made.push(m);
    return m;
  };
  const settle = () => new Promise((r) => setTimeout(r, 200));

  add(1, 'a');
  add(2, 'b');
  add(3, 'c');
  const c = mk();
  const held = c.held()!;
  t.same([...held.keys()].sort(), [hex('a'), hex('b'), hex('c')]);
  t.ok(c.keep(held), 'kept, written down');
  t.same(decodeCarried(fs.readFileSync(file, 'latin1'))!.carried, held);
  c.told(hex('c'));
  t.notOk(decodeCarried(fs.readFileSync(file, 'latin1'))!.carried.has(hex('c')), 'a client the kernel told us of is no longer carried');
  fs.rmSync(path.join(nfsd, 'clients', '1'), { recursive: true });
  await settle();
  t.same(forgotten, [hex('a')], 'a carried client nfsd destroyed is forgotten');
  // a new instance of b (same name, another directory) before the old one goes: the kernel's to track
  add(4, 'b');
  fs.rmSync(path.join(nfsd, 'clients', '2'), { recursive: true });
  await settle();
  t.same(forgotten, [hex('a')], 'not a client that came back under its name');
  t.equal(decodeCarried(fs.readFileSync(file, 'latin1'))!.carried.size, 0, 'and the list is empty');

  // nfsd stopping: the pipe is no longer ours when its clients go
  add(5, 'd');
  t.ok(c.keep(new Map([[hex('d'), '5']])));
  instance = null;
  fs.rmSync(path.join(nfsd, 'clients', '5'), { recursive: true });
  await settle();
  t.same(forgotten, [hex('a')], 'a client going with nfsd is not forgotten');
  t.notOk(c.keep(new Map([[hex('d'), '5']])), 'nothing kept without a pipe');
  t.equal(c.held(), null, 'nor listed');
  c.close();

  // restarted under the same nfsd: the list is taken back, the gone forgotten
  instance = 'boot:1:10';
  add(6, 'e');
  add(7, 'f');
  const c2 = mk();
  t.ok(c2.keep(new Map([[hex('e'), '6'], [hex('f'), '7']])));
  c2.close();
  fs.rmSync(path.join(nfsd, 'clients', '6'), { recursive: true });
  const c3 = mk();
  c3.resume();
  t.same(forgotten, [hex('a'), hex('e')], 'a carried client gone while the daemon was down is forgotten at its restart');
  fs.rmSync(path.join(nfsd, 'clients', '7'), { recursive: true });
  await settle();
  t.same(forgotten, [hex('a'), hex('e'), hex('f')], 'and the rest are watched again');
  c3.reset();
  c3.close();
  // another nfsd (a restart, a reboot): the list is void
  add(8, 'g');
  t.ok(mk().keep(new Map([[hex('g'), '8']])));
  fs.rmSync(path.join(nfsd, 'clients', '8'), { recursive: true });
  instance = 'boot:2:11';
  const c4 = mk();
  c4.resume();
  t.same(forgotten.length, 3, 'a list made for another nfsd is not acted on');
  c4.close();
  // damaged list: nothing trusted, said
  fs.writeFileSync(file, 'garbage\n');
  mk().resume();
  t.match(lines.join('\n'), /carried\.s1 is damaged/);
  // no file name (no store id) and no state dir: nothing carried, said once each way
  t.equal(mk(null).held(), null);
  t.match(lines.join('\n'), /no id/);
  const noDir = mk(path.join(dir, 'missing', 'carried.s1'));
  add(9, 'h');
  t.notOk(noDir.keep(new Map([[hex('h'), '9']])), 'no state dir: not kept');
  t.match(lines.join('\n'), /cannot write .*missing/);
  noDir.close();
  mk(path.join(dir, 'missing', 'carried.s1')).resume(); // nothing to read: silent
  t.notMatch(lines.join('\n'), /cannot read/);
});
