// Unit and property tests for the cld wire codec (lib/cld/codec.ts): the
// layout of cld.h, round trips, every malformed client field, and the
// framer's promise that any split of a byte stream yields the same messages.
import t from 'tap';
import { isDeepStrictEqual } from 'util';
import fc from 'fast-check';
import {
  CLD_NAME_MAX,
  CLD_PRINCHASH_SIZE,
  CLD_V1_SIZE,
  CLD_V2_SIZE,
  ClientInfo,
  Cmd,
  decodeClient,
  decodeGraceTime,
  decodeHeader,
  EINPROGRESS,
  encodeClient,
  encodeMessage,
  encodeReply,
  MessageFramer,
  messageSize,
} from '../lib/cld/codec';

const name = (n: number, fill = 0x61): Buffer => Buffer.alloc(n, fill);

t.test('sizes and header layout', async (t) => {
  t.equal(messageSize(1), 1034);
  t.equal(messageSize(2), 1067);
  for (const v of [0, 3, 255]) t.equal(messageSize(v), null);
  const m = encodeMessage({ vers: 2, cmd: Cmd.Create, xid: 0xdeadbeef, status: -EINPROGRESS }, { name: Buffer.from('abc'), princhash: name(32, 7) });
  t.equal(m.length, CLD_V2_SIZE);
  t.same([...m.subarray(0, 13)], [2, 0, 0x8d, 0xff, 0xef, 0xbe, 0xad, 0xde, 3, 0, 0x61, 0x62, 0x63]);
  t.equal(m[1034], 32);
  t.equal(m[1035], 7);
  t.same(decodeHeader(m), { vers: 2, cmd: 0, status: -115, xid: 0xdeadbeef });
  t.throws(() => decodeHeader(Buffer.alloc(7)));
  t.throws(() => encodeMessage({ vers: 3, cmd: 0, xid: 0 }));
});

t.test('replies', async (t) => {
  const up = encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 9 });
  const r = encodeReply(up, 0, 2);
  t.equal(r.length, CLD_V1_SIZE);
  t.equal(r[8], 2);
  t.equal(up[8], 0, 'the upcall is not modified');
  const c = encodeMessage({ vers: 2, cmd: Cmd.Create, xid: 5 }, { name: name(1024), princhash: null });
  const e = encodeReply(c, -121);
  t.same(decodeHeader(e), { vers: 2, cmd: Cmd.Create, status: -121, xid: 5 });
  t.same(e.subarray(8), c.subarray(8), 'the union is echoed');
  // A GraceStart downcall: the union holds only the client, whatever the upcall carried.
  const gs = encodeMessage({ vers: 2, cmd: Cmd.GraceStart, xid: 77 }, { name: name(1024, 0xff), princhash: name(32, 0xff) });
  const d = encodeClient(gs, -EINPROGRESS, { name: Buffer.from('x'), princhash: null });
  t.same(decodeHeader(d), { vers: 2, cmd: Cmd.GraceStart, status: -EINPROGRESS, xid: 77 });
  t.same(d, encodeMessage({ vers: 2, cmd: Cmd.GraceStart, xid: 77, status: -EINPROGRESS }, { name: Buffer.from('x'), princhash: null }));
  const v1 = encodeClient(encodeMessage({ vers: 1, cmd: Cmd.GraceStart, xid: 1 }), -EINPROGRESS, { name: Buffer.from('y'), princhash: name(32) });
  t.equal(v1.length, CLD_V1_SIZE, 'v1 has no princhash');
  t.same(decodeClient(v1), { ok: true, client: { name: Buffer.from('y'), princhash: null } });
  const g = encodeMessage({ vers: 1, cmd: Cmd.GraceDone, xid: 3 }, undefined, -2n);
  t.equal(decodeGraceTime(g), -2n);
  t.throws(() => encodeMessage({ vers: 2, cmd: 0, xid: 0 }, { name: name(1025), princhash: null }));
  t.throws(() => encodeMessage({ vers: 2, cmd: 0, xid: 0 }, { name: name(1), princhash: name(33) }));
});

t.test('bad client fields', async (t) => {
  const good = encodeMessage({ vers: 2, cmd: Cmd.Create, xid: 1 }, { name: name(4), princhash: null });
  const patched = (f: (m: Buffer) => void, base = good): Buffer => {
    const m = Buffer.from(base);
    f(m);
    return m;
  };
  const bad: Array<[string, Buffer]> = [
    ['version 0', patched((m) => (m[0] = 0))],
    ['version 3', patched((m) => (m[0] = 3))],
    ['name length 0', patched((m) => m.writeUInt16LE(0, 8))],
    ['name length 1025', patched((m) => m.writeUInt16LE(1025, 8))],
    ['name length 65535', patched((m) => m.writeUInt16LE(65535, 8))],
    ['short v2', good.subarray(0, CLD_V1_SIZE)],
    ['short header', good.subarray(0, 7)],
  ];
  for (const n of [1, 7, 31, 33, 255]) bad.push([`princhash length ${n}`, patched((m) => (m[1034] = n))]);
  for (const [what, m] of bad) {
    const r = decodeClient(m);
    t.equal(r.ok, false, what);
    if (!r.ok) t.ok(r.why.length > 0);
  }
  // v1 has no cp_len: whatever follows the name is not looked at.
  const v1 = encodeMessage({ vers: 1, cmd: Cmd.Create, xid: 1 }, { name: name(CLD_NAME_MAX), princhash: null });
  t.same(decodeClient(Buffer.concat([v1, Buffer.from([7])])), { ok: true, client: { name: name(CLD_NAME_MAX), princhash: null } });
  t.same(decodeClient(patched((m) => (m[1034] = 0))), { ok: true, client: { name: name(4), princhash: null } });
});

const clientArb: fc.Arbitrary<ClientInfo> = fc.record({
  name: fc.uint8Array({ minLength: 1, maxLength: CLD_NAME_MAX }).map((a) => Buffer.from(a)),
  princhash: fc.option(fc.uint8Array({ minLength: CLD_PRINCHASH_SIZE, maxLength: CLD_PRINCHASH_SIZE }).map((a) => Buffer.from(a)), { nil: null }),
});
const msgArb = fc
  .record({ vers: fc.constantFrom(1, 2), cmd: fc.integer({ min: 0, max: 255 }), xid: fc.nat({ max: 0xffffffff }), status: fc.integer({ min: -32768, max: 32767 }), client: clientArb })
  .map(({ client, ...h }) => ({ h, client, msg: encodeMessage(h, client) }));

t.test('round trips', async (t) => {
  fc.assert(
    fc.property(msgArb, ({ h, client, msg }) => {
      if (!isDeepStrictEqual(decodeHeader(msg), h)) return false;
      const want = h.vers === 1 ? { ...client, princhash: null } : client;
      const got = decodeClient(msg);
      return got.ok && got.client.name.equals(want.name) && String(got.client.princhash?.toString('hex')) === String(want.princhash?.toString('hex'));
    }),
  );
  t.pass('property held');
});

t.test('framing: any split of a concatenation yields the same messages', async (t) => {
  fc.assert(
    fc.property(fc.array(msgArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (msgs, cuts) => {
      const all = Buffer.concat(msgs.map((m) => m.msg));
      const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
      const f = new MessageFramer();
      const got: Buffer[] = [];
      let prev = 0;
      for (const p of [...points, all.length]) {
        for (const item of f.push(all.subarray(prev, p))) {
          if (!('msg' in item)) return false;
          got.push(item.msg);
        }
        prev = p;
      }
      return got.length === msgs.length && got.every((g, i) => g.equals(msgs[i].msg));
    }),
  );
  t.pass('property held');
});

t.test('framing: unknown versions and reset', async (t) => {
  const f = new MessageFramer();
  const a = encodeMessage({ vers: 1, cmd: Cmd.GetVersion, xid: 1 });
  const b = encodeMessage({ vers: 2, cmd: Cmd.Create, xid: 2 }, { name: name(3), princhash: null });
  // One read per message, as on rpc_pipefs: the bad one is dropped whole.
  const bad = Buffer.from(b);
  bad[0] = 9;
  const items = [...f.push(a), ...f.push(bad), ...f.push(b)];
  t.equal(items.length, 3);
  t.same((items[0] as { msg: Buffer }).msg, a);
  t.match(items[1], { error: /version 9/, header: { vers: 9, cmd: 0, xid: 2 } });
  t.same((items[2] as { msg: Buffer }).msg, b);
  // A header split over reads, then an error in the second read.
  t.same(f.push(bad.subarray(0, 3)), []);
  t.match(f.push(bad.subarray(3)), [{ error: /version 9/ }]);
  t.same(f.push(b), [{ msg: b }]);
  // reset() forgets half a message.
  t.same(f.push(b.subarray(0, 500)), []);
  f.reset();
  t.same(f.push(a), [{ msg: a }]);
});

// --- the protocol server in-process (lib/cld/server.ts): its failure paths --------------

/** The server and store modules, loaded here only, and a store dir removed after the test. */
async function serverKit(t: { teardown(fn: () => void): void }, prefix: string) {
  const fs = await import('fs');
  const os = await import('os');
  const path = await import('path');
  const { CldServer } = await import('../lib/cld/server');
  const { Store } = await import('../lib/store/store');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { fs, path, CldServer, Store, dir };
}

t.test('server: group commit, bad names, a store that cannot be written, a pipe that refuses', async (t) => {
  const { fs, path, CldServer, Store, dir } = await serverKit(t, 'cld-server-');
  const logged: string[] = [];
  const log = { error: (m: string) => logged.push(m), warn: (m: string) => logged.push(m), debug() {}, debugEnabled: false, foreground: true, flush() {} };
  const store = new Store({ dir, log });
  const out: Buffer[] = [];
  let refuse = false;
  let mutates = 0;
  const mutate = store.mutate.bind(store);
  store.mutate = ((fn: Parameters<typeof store.mutate>[0]) => (mutates++, mutate(fn))) as typeof store.mutate;
  const server = new CldServer({ store, log: log as never, send: (b) => (refuse ? (() => { throw new Error('EINVAL'); })() : out.push(b)) });
  let xid = 0;
  const send = async (...msgs: Buffer[]) => {
    out.length = 0;
    for (const m of msgs) server.handle(m);
    await server.idle();
    return out.map((b) => [decodeHeader(b).xid, decodeHeader(b).status]);
  };
  const m = (cmd: number, client?: ClientInfo) => encodeMessage({ vers: 2, cmd, xid: ++xid }, client);
  await send(m(Cmd.GraceStart));
  mutates = 0;
  const creates = Array.from({ length: 6 }, (_, i) => m(Cmd.Create, { name: name(5 + i), princhash: null }));
  const bad = Buffer.from(m(Cmd.Create, { name: name(3), princhash: null }));
  bad.writeUInt16LE(0, 8);
  t.same(await send(...creates.slice(0, 3), bad, ...creates.slice(3)), [[decodeHeader(bad).xid, -22], ...creates.map((c) => [decodeHeader(c).xid, 0])], 'the empty name refused at once, the six creates answered 0 after their commit');
  t.equal(mutates, 1, 'six creates, one transaction');
  t.match(logged.join('\n'), /refused/);
  fs.chmodSync(dir, 0o500);
  fs.writeFileSync(path.join(dir, 'clients.lock'), ''); // a lock that is no directory: writers cannot take it
  const short = new Store({ dir, log, lock: { waitMs: 50 } });
  const server2 = new CldServer({ store: short, log: log as never, send: (b) => out.push(b) });
  out.length = 0;
  const c = m(Cmd.Create, { name: name(9), princhash: null });
  server2.handle(c);
  server2.handle(m(Cmd.GraceDone));
  server2.handle(m(Cmd.Check, { name: name(9), princhash: null }));
  server2.handle(m(Cmd.GraceStart));
  await server2.idle();
  t.same(out.map((b) => decodeHeader(b).status), [-121, -121, -13, -121], 'no lock: -EREMOTEIO for writes and grace, -EACCES for a check');
  fs.rmSync(path.join(dir, 'clients.lock'));
  fs.chmodSync(dir, 0o700);
  refuse = true;
  logged.length = 0;
  t.same(await send(m(Cmd.GetVersion)), [], 'a refused reply is not retried');
  t.match(logged.join('\n'), /cannot answer/, 'and is logged');
  refuse = false;
  t.same((await send(m(Cmd.GetVersion))).length, 1, 'and the next message is answered');
});

t.test('GraceStart downcalls from one reused buffer are byte for byte the ones encodeClient builds', async (t) => {
  const { ClientDowncalls } = await import('../lib/cld/codec');
  const clientArb = fc.record({
    name: fc.uint8Array({ minLength: 1, maxLength: CLD_NAME_MAX }).map((b) => Buffer.from(b)),
    princhash: fc.option(fc.uint8Array({ minLength: CLD_PRINCHASH_SIZE, maxLength: CLD_PRINCHASH_SIZE }).map((b) => Buffer.from(b))),
  });
  fc.assert(
    fc.property(fc.constantFrom(1, 2), fc.nat(), fc.array(clientArb, { minLength: 1, maxLength: 12 }), (vers, xid, clients) => {
      const gs = encodeMessage({ vers, cmd: Cmd.GraceStart, xid });
      const out = new ClientDowncalls(gs, -EINPROGRESS);
      return clients.every((c) => {
        const name = c.name.toString('hex');
        const hex = Buffer.from(name + (c.princhash ? c.princhash.toString('hex') : ''), 'latin1');
        return out.set(hex, 0, name.length, c.princhash ? name.length : -1).equals(encodeClient(gs, -EINPROGRESS, c));
      });
    }),
    { numRuns: 500 },
  );
  t.pass('500 sequences, long names after short ones and princhashes after none');
});

t.test('server: a due compaction waits for a quiet pipe, then runs', async (t) => {
  const { fs, path, CldServer, Store, dir } = await serverKit(t, 'cld-quiet-');
  const log = { error() {}, warn() {}, debug() {}, debugEnabled: false, foreground: true, flush() {} };
  const store = new Store({ dir, log, deferCompaction: true, compactBytes: 1024 });
  const gen = () => /gen=(\d+)/.exec(fs.readFileSync(path.join(dir, 'clients.snap'), 'latin1'))![1];
  let answered = 0;
  let xid = 0;
  let next: (() => void) | null = null;
  const server = new CldServer({
    store,
    log: log as never,
    send: () => {
      answered++;
      next?.();
    },
  });
  const create = (i: number) => encodeMessage({ vers: 2, cmd: Cmd.Create, xid: ++xid }, { name: name(10 + (i % 200)), princhash: null });
  server.handle(encodeMessage({ vers: 2, cmd: Cmd.GraceStart, xid: ++xid }));
  await server.idle();
  const before = gen();
  // A storm: each create sent 5 ms after the one before it is answered, 40
  // of them (~4 KiB of journal). (A 5 ms timer set before the 20 ms quiet
  // one fires first, however late both are.)
  let sent = 0;
  const storm = new Promise<void>((resolve) => {
    next = () => {
      if (sent < 40) setTimeout(() => server.handle(create(sent++)), 5);
      else resolve();
    };
  });
  server.handle(create(sent++));
  await storm;
  next = null;
  t.ok(store.compactionPending, 'the journal is past its threshold');
  t.equal(gen(), before, 'but nothing was folded while upcalls kept coming');
  await server.idle();
  t.notOk(store.compactionPending, 'once the pipe was quiet, the compaction ran');
  t.not(gen(), before, 'a new snapshot generation');
  t.equal(answered, 41, 'every upcall answered');
});
