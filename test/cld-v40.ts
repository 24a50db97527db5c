// A v4.0 client across two nfsd restarts. Under cld v2 the kernel checks a
// v4.0 reclaim in memory and sends no Create for it, so nfsdcld forgets the
// client at GraceDone and refuses its reclaim after the next restart (issue
// 11, measured under the real kernel). Ours asks nfsd's client list at
// GraceDone (lib/cld/nfsd-clients.ts): here a fake /proc/fs/nfsd, first its
// parser, then the rule, then the daemon as the kernel runs it.
import t from 'tap';
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cmd, decodeClient, decodeHeader, encodeMessage } from '../lib/cld/codec';
import { heldV40Clients, holdsState, parseClientInfo } from '../lib/cld/nfsd-clients';
import { graceEnded, graceStarted, liveState, reclaimedUntold, recoveryMembership } from '../lib/tracking';
import type { Epochs, RecState } from '../lib/store/format';
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
  t.same('ids' in r ? [...r.ids] : r, [Buffer.from('v40-lock').toString('hex')]);
  t.match(heldV40Clients(path.join(scratch, 'no-nfsd')), { error: /cannot list .*no-nfsd\/clients/ });
});

t.test('the daemon: a v4.0 client that only reclaims is offered again after a second restart', async (t) => {
  ensureBuilt();
  const iso = path.join(scratch, 'iso');
  fs.mkdirSync(path.join(iso, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'nfs.conf'), '');
  const nfsd = path.join(scratch, 'nfsd');
  const client = (n: number, name: string, minor: number, states: string) => {
    fs.mkdirSync(path.join(nfsd, 'clients', String(n)), { recursive: true });
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'info'), info(`"${name}"`, minor));
    fs.writeFileSync(path.join(nfsd, 'clients', String(n), 'states'), states);
  };
  const pipefs = path.join(scratch, 'pipefs');
  fs.mkdirSync(pipefs);
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NFSDCLTRACK_CONF_FILE: path.join(iso, 'nfs.conf'), NFSDCLTRACK_NFSD_DIR: nfsd };
  const d = await CldDriver.open(pipefs, path.join(scratch, 'store'), { cmd: isolated(iso, [path.join(ROOT, 'dist', 'nfsdcld')]), env });
  t.teardown(() => d.close());
  let xid = 0;
  const call = async (cmd: number, name?: string) => {
    const r = await d.call(encodeMessage({ vers: 2, cmd, xid: ++xid }, name === undefined ? undefined : { name: Buffer.from(name), princhash: null }), 20_000);
    t.equal(decodeHeader(r.final).status, 0, `${['Create', 'Remove', 'Check', 'GraceDone', 'GraceStart'][cmd]} ${name ?? ''} answered 0`);
    return r.inProgress.map((m) => (decodeClient(m) as { client: { name: Buffer } }).client.name.toString()).sort();
  };
  await call(Cmd.GraceStart);
  for (const n of ['v40-lock', 'v40-idle', 'v41-open']) await call(Cmd.Create, n);
  await call(Cmd.GraceDone);
  // Restart 1: all three may reclaim. The v4.0 client reclaims its lock (no
  // upcall), the idle one reclaims nothing, the v4.1 one holds state but sends
  // no RECLAIM_COMPLETE; a v4.0 client never recorded holds state too.
  t.same(await call(Cmd.GraceStart), ['v40-idle', 'v40-lock', 'v41-open']);
  client(1, 'v40-lock', 0, OPEN + LOCK);
  client(2, 'v40-idle', 0, '');
  client(3, 'v41-open', 1, OPEN);
  client(4, 'v40-stranger', 0, LOCK);
  await call(Cmd.GraceDone);
  // Restart 2: only the client that reclaimed is offered (nfsdcld would offer nobody).
  t.same(await call(Cmd.GraceStart), ['v40-lock'], 'the v4.0 client that reclaimed, and nobody who did not');
  await call(Cmd.GraceDone);
  t.same(await call(Cmd.GraceStart), ['v40-lock'], 'and again after the third restart');
  // nfsd's list unreadable: what nfsdcld does, and one warning.
  fs.rmSync(nfsd, { recursive: true });
  await call(Cmd.GraceDone);
  await call(Cmd.GraceStart);
  await call(Cmd.GraceDone);
  t.same(await call(Cmd.GraceStart), [], 'without the list the client is forgotten, as by nfsdcld');
  t.equal(d.daemonLog.match(/cannot list .*clients.*refused after the next restart/g)?.length, 1, 'said once');
});
