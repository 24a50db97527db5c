// Unit and property tests for the pure parts of the program: hex ids
// (lib/hex.ts), strtol (lib/strtol.ts), getopt_long (lib/getopt.ts), the
// GRACE_START reader (lib/grace.ts), the store's line codecs
// (lib/store/format.ts) and the lock's liveness rule (lib/store/lock.ts).
//
// strtol and getopt are compared with the real thing: two tiny C programs
// (fixtures/cli/*.c) compiled with gcc against this machine's glibc, fed
// thousands of random inputs in one batch each.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { isDeepStrictEqual } from 'util';
import fc from 'fast-check';
import { parseHexId, isCanonicalId, MAX_ID_BYTES } from '../lib/hex';
import { strtol } from '../lib/strtol';
import { parseKernelArgs, firstOperand } from '../lib/getopt';
import { parseGraceStart } from '../lib/grace';
import { EINVAL, ENOBUFS, statusFor } from '../lib/errno';
import { crcHex } from '../lib/crc32';
import { holderIsDead, ownerName, parseOwnerName, startTimeOf } from '../lib/store/lock';
import {
  decodeJournalEntry,
  decodeJournalHeader,
  decodeRecord,
  decodeSnapshotHeader,
  decodeTimeLine,
  encodeJournalEntry,
  encodeJournalHeader,
  encodeRecord,
  encodeSnapshotHeader,
  encodeTimeLine,
  keyOf,
  MAX_TIME,
  recordKey,
  SNAPSHOT_HEADER_BYTES,
  TIME_LINE_BYTES,
  unseal,
  INITIAL_EPOCHS,
  type ClientRecord,
  type Epochs,
  type JournalEntry,
  type RecState,
} from '../lib/store/format';
import { Cmd, decodeHeader, encodeMessage } from '../lib/cld/codec';
import { Store } from '../lib/store/store';
import { created, graceEnded, graceStarted, liveState, recoveryMembership, removedFromCurrent } from '../lib/tracking';
import { CldModel } from './lib/cld-model';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'cli');
const SEED = Number(process.env.NFSDCLTRACK_TEST_SEED ?? 20261124);
const RUNS = Number(process.env.NFSDCLTRACK_TEST_RUNS ?? 4000);

// --- C helpers ----------------------------------------------------------------

let workdir: string | null = null;
function compile(name: string): string | null {
  workdir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-unit-'));
  const out = path.join(workdir, name);
  // gnu11: plain strtol, not glibc 2.38's C23 variant that also accepts 0b.
  const r = spawnSync('gcc', ['-std=gnu11', '-O1', '-o', out, path.join(FIX, `${name}.c`)], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return out;
}
t.teardown(() => {
  if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

function runBatch(bin: string, input: string): string[] {
  const r = spawnSync(bin, [], { input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr}`);
  const out = r.stdout.toString('latin1').split('\n');
  out.pop();
  return out;
}

// --- hex ----------------------------------------------------------------------

/** An independent model of hex_str_to_bin's outcome (by its documented check order). */
function hexModel(s: string): { ok: true; id: string } | { ok: false; errno: number } {
  const bytes = Buffer.from(s, 'utf8');
  // The first bad pair decides; a full buffer is checked before each pair.
  for (let i = 0; i < bytes.length; i += 2) {
    if (i / 2 >= MAX_ID_BYTES) return { ok: false, errno: ENOBUFS };
    if (i + 1 >= bytes.length) return { ok: false, errno: EINVAL };
    const pair = String.fromCharCode(bytes[i], bytes[i + 1]);
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) return { ok: false, errno: EINVAL };
  }
  return { ok: true, id: s.toLowerCase() };
}

t.test('hex ids', async (t) => {
  t.same(parseHexId(''), { ok: true, id: '' }, 'the empty id is valid');
  t.same(parseHexId('abCD09'), { ok: true, id: 'abcd09' }, 'case-insensitive, canonical lowercase');
  t.same(parseHexId('ABCDEF'), parseHexId('abcdef'), 'ABCDEF and abcdef are the same client');
  t.same(parseHexId('abc'), { ok: false, errno: EINVAL }, 'odd length');
  t.same(parseHexId('a'), { ok: false, errno: EINVAL });
  t.same(parseHexId('zz'), { ok: false, errno: EINVAL }, 'non-hex');
  t.same(parseHexId('0g'), { ok: false, errno: EINVAL });
  t.same(parseHexId(' 00'), { ok: false, errno: EINVAL }, 'no white space skipped');
  t.same(parseHexId('00 '), { ok: false, errno: EINVAL });
  t.same(parseHexId('0x00'), { ok: false, errno: EINVAL }, 'no 0x prefix');
  t.same(parseHexId('é0'), { ok: false, errno: EINVAL }, 'non-ASCII');
  const max = 'a1'.repeat(MAX_ID_BYTES);
  t.same(parseHexId(max), { ok: true, id: max }, 'exactly 1024 bytes');
  t.same(parseHexId(max.toUpperCase()), { ok: true, id: max });
  t.same(parseHexId(max + '00'), { ok: false, errno: ENOBUFS }, '1025 bytes');
  t.same(parseHexId(max + '0'), { ok: false, errno: ENOBUFS }, '2049 valid digits: ENOBUFS before the odd-length check');
  t.same(parseHexId(max + 'zz'), { ok: false, errno: ENOBUFS }, 'garbage past 1024 bytes: ENOBUFS');
  t.same(parseHexId(max.slice(0, -1) + 'z'), { ok: false, errno: EINVAL }, 'garbage in the last pair: EINVAL');
  t.same(parseHexId(max.slice(0, -1)), { ok: false, errno: EINVAL }, '2047 digits: odd');
  t.equal(statusFor(EINVAL), 234);
  t.equal(statusFor(ENOBUFS), 151);

  const hexChar = fc.constantFrom(...'0123456789abcdefABCDEF');
  const anyChar = fc.constantFrom(...'0123456789abcdefABCDEFgxGX -+\u00e9\u0000z');
  const lengths = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 2040, max: 2056 }));
  const hexString = (chars: fc.Arbitrary<string>) =>
    lengths.chain((n) => fc.array(chars, { minLength: n, maxLength: n }).map((a) => a.join('')));
  await t.test('matches the model on random strings', async (t) => {
    fc.assert(
      fc.property(fc.oneof(hexString(hexChar), hexString(anyChar), fc.string({ maxLength: 20 })), (s) =>
        isDeepStrictEqual(parseHexId(s), hexModel(s)),
      ),
      { seed: SEED, numRuns: 3000 },
    );
    t.pass('3000 random strings');
  });
  await t.test('valid ids: case-insensitive, canonical, bounded', async (t) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: MAX_ID_BYTES }), fc.boolean(), (bytes, upper) => {
        const hex = Buffer.from(bytes).toString('hex');
        const r = parseHexId(upper ? hex.toUpperCase() : hex);
        return r.ok && r.id === hex && isCanonicalId(r.id);
      }),
      { seed: SEED, numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: MAX_ID_BYTES + 1, maxLength: MAX_ID_BYTES + 40 }), (bytes) => {
        const r = parseHexId(Buffer.from(bytes).toString('hex'));
        return !r.ok && r.errno === ENOBUFS;
      }),
      { seed: SEED, numRuns: 100 },
    );
    t.pass('properties hold');
  });
  t.notOk(isCanonicalId('ABCD'), 'uppercase is not canonical');
  t.notOk(isCanonicalId('abc'));
  t.notOk(isCanonicalId('a1'.repeat(MAX_ID_BYTES + 1)));
  t.ok(isCanonicalId(''));
});

// --- strtol -------------------------------------------------------------------

const STRTOL_EDGES = [
  '', ' ', '0', '-0', '+0', '00', '0x', '0X', '0x1', '0XfF', '0xg', '-0x', '+0x10', ' \t\n\v\f\r42', '- 5', '+-5', '--5',
  '08', '07', '0777', '0779', '1e3', '12abc', '  -12  ', '\u00a012', '9223372036854775807', '9223372036854775808',
  '-9223372036854775808', '-9223372036854775809', '0x7fffffffffffffff', '0x8000000000000000', '-0x8000000000000000',
  '-0x8000000000000001', '0777777777777777777777', '01000000000000000000000', '99999999999999999999x', '0x0x1', '0b101',
  '1\u00e9', '0x\u00e9', '00x1', '0x' + '0'.repeat(40) + '1', '-' + '0'.repeat(30) + '9223372036854775808',
];

function randomStrtolInputs(n: number): string[] {
  const alphabet = ' \t\n\v\f\r+-0000011789xXaAfFgGzZ._\u00e9';
  const piece = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...alphabet) },
    { weight: 1, arbitrary: fc.constantFrom('0x', '0X', '-0x', ' ', '  ', '922337203685477580', '1844674407370955161', '7fffffffffffffff', '1777777777777777777777') },
  );
  const str = fc.array(piece, { maxLength: 14 }).map((a) => a.join(''));
  return fc.sample(str, { seed: SEED, numRuns: n });
}

t.test('strtol matches glibc strtol(s, &end, 0)', async (t) => {
  const bin = compile('strtol_ref');
  const inputs = [...STRTOL_EDGES, ...randomStrtolInputs(RUNS * 2)];
  if (!bin) {
    t.skip('SKIP: gcc is not available: strtol not compared with glibc', () => {});
  } else {
    const out = runBatch(bin, inputs.map((s) => Buffer.from(s, 'utf8').toString('hex')).join('\n') + '\n');
    t.equal(out.length, inputs.length, 'one answer per input');
    const mismatches: string[] = [];
    inputs.forEach((s, i) => {
      const [v, end, range] = out[i].split(' ');
      const r = strtol(s);
      // end is a byte offset in C; everything before it is ASCII, so it is also ours.
      const ours = `${r.value} ${r.converted ? r.end : 0} ${r.range ? 1 : 0}`;
      if (ours !== `${v} ${end} ${range}`) mismatches.push(`${JSON.stringify(s)}: glibc ${out[i]}, ours ${ours}`);
    });
    t.same(mismatches.slice(0, 20), [], `${inputs.length} strings, no mismatch`);
    const ranges = out.filter((l) => l.endsWith(' 1')).length;
    const unconverted = out.filter((l) => l.startsWith('0 0 ')).length;
    const trailing = inputs.filter((s, i) => Number(out[i].split(' ')[1]) < Buffer.byteLength(s) && !out[i].startsWith('0 0 ')).length;
    t.ok(ranges > 50 && unconverted > 500 && trailing > 500, `inputs cover ERANGE (${ranges}), no digits (${unconverted}), trailing garbage (${trailing})`);
  }
  t.same(strtol('0x'), { value: 0n, end: 1, converted: true, range: false }, '"0x" converts the 0 only');
  t.same(strtol('abc'), { value: 0n, end: 0, converted: false, range: false });
  t.same(strtol('-9223372036854775809').range, true);
});

t.test('NFSDCLTRACK_GRACE_START', async (t) => {
  t.equal(parseGraceStart(undefined), null, 'absent: unknown');
  t.equal(parseGraceStart('abc'), null, 'unparseable: unknown (deliberately unlike C, which reads 0)');
  t.equal(parseGraceStart(''), null, 'empty: unknown');
  t.equal(parseGraceStart('1700000000'), 1700000000);
  t.equal(parseGraceStart('0x10'), 16);
  t.equal(parseGraceStart('010'), 8);
  t.equal(parseGraceStart(' 12abc'), 12, 'trailing garbage ignored, as C does');
  t.equal(parseGraceStart('-5'), -5);
  t.equal(parseGraceStart('99999999999999999999'), null, 'ERANGE: unknown');
  t.equal(parseGraceStart('9223372036854775807'), null, 'LONG_MAX is the C program\'s "unknown"');
  t.equal(parseGraceStart('0x7fffffffffffffff'), null);
  t.equal(parseGraceStart('9223372036854775806'), 9223372036854775806);
});

// --- getopt -------------------------------------------------------------------

const ARG_TOKENS = [
  '-d', '-f', '-h', '-s', '-sDIR', '-s=x', '-fds', '-dfs', '-df', '-fd', '-ds', '-hs', '-sh', '-dh', '-1', '-x', '-', '--', '---',
  '--help', '--he', '--h', '--help=1', '--debug', '--deb', '--d', '--debug=', '--fore', '--f', '--foreground', '--foregroundx',
  '--storagedir', '--stor', '--s', '--storagedir=X', '--stor=Y', '--s=', '--storagedir=', '--storagedir=a=b', '--x', '--=x',
  '--stx', '--helpx', 'init', 'check', 'create', 'gracedone', 'list', 'abcd', '', 'DIR', 'x y', '-dsX', '-ffff', '-d1',
];

function randomArgvs(n: number): string[][] {
  const token = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...ARG_TOKENS) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...'-dfhs1x=ab '), { maxLength: 6 }).map((a) => a.join('')) },
  );
  return fc.sample(fc.array(token, { maxLength: 7 }), { seed: SEED, numRuns: n });
}

function oursNormalized(argv: string[]): string {
  const a = parseKernelArgs(argv);
  if (a.error || a.help) return 'USAGE';
  return [`d=${+a.debug} f=${+a.foreground} s=${a.storagedir ?? '\x02'}`, ...a.operands].join('\x1f');
}

t.test('getopt matches GNU getopt_long("hdfs:", help/debug/foreground/storagedir=)', async (t) => {
  const fixed: string[][] = [
    [], ['init'], ['-d', 'init'], ['init', '-d'], ['-s', 'DIR', 'check', 'ab'], ['check', 'ab', '-s', 'DIR'], ['--storagedir=DIR', 'init'],
    ['--storagedir', 'DIR', 'init'], ['--stor', 'DIR', 'init'], ['--s', 'D', 'init'], ['gracedone', '-1'], ['gracedone', '--', '-1'],
    ['--', '-d'], ['-sDIR', 'init'], ['-fds', 'DIR', 'init'], ['-dfsDIR', 'x'], ['-s'], ['init', '-s'], ['--storagedir'], ['-h', 'init'],
    ['init', '--help'], ['-x', 'init'], ['--bogus'], ['--help=x'], ['-', 'init'], ['-s', '--', 'init'], ['--storagedir', '-d', 'init'],
    ['a', '--', 'b', '-d'], ['-d', '-d', '-s', 'a', '-s', 'b'], ['--=x'], ['--debug=1'], ['---'], ['-f', 'check', '-d', 'ab', 'extra'],
  ];
  const argvs = [...fixed, ...randomArgvs(RUNS)];
  const bin = compile('getopt_ref');
  if (!bin) {
    t.skip('SKIP: gcc is not available: getopt not compared with glibc', () => {});
    return;
  }
  const out = runBatch(bin, argvs.map((a) => [String(a.length), ...a].join('\x1f')).join('\n') + '\n');
  t.equal(out.length, argvs.length, 'one answer per command line');
  const mismatches: string[] = [];
  argvs.forEach((argv, i) => {
    const ours = oursNormalized(argv);
    if (ours !== out[i]) mismatches.push(`${JSON.stringify(argv)}: glibc ${JSON.stringify(out[i])}, ours ${JSON.stringify(ours)}`);
  });
  t.same(mismatches.slice(0, 20), [], `${argvs.length} command lines, no mismatch`);
  const usage = out.filter((l) => l === 'USAGE').length;
  const withS = out.filter((l) => l !== 'USAGE' && !l.includes('s=\x02')).length;
  t.ok(usage > argvs.length / 5 && argvs.length - usage > argvs.length / 5 && withS > 200, `both outcomes covered (${usage} usage, ${withS} with a storage dir)`);
  // The command name the CLI dispatches on is getopt's first operand, whatever else is on the line.
  const opMismatch: string[] = [];
  argvs.forEach((argv, i) => {
    if (out[i] === 'USAGE') return;
    const first = out[i].split('\x1f')[1];
    if (firstOperand(argv) !== first) opMismatch.push(`${JSON.stringify(argv)}: glibc ${first}, ours ${firstOperand(argv)}`);
  });
  t.same(opMismatch.slice(0, 20), [], 'firstOperand agrees with getopt on every valid command line');
});

t.test('getopt specifics', async (t) => {
  t.same(parseKernelArgs(['-fds', 'DIR', 'init']), { help: false, debug: true, foreground: true, storagedir: 'DIR', operands: ['init'] });
  t.same(parseKernelArgs(['init', '--storagedir=/x', 'extra']).operands, ['init', 'extra']);
  t.ok(parseKernelArgs(['gracedone', '-1']).error, '-1 is an unknown option');
  t.same(parseKernelArgs(['gracedone', '--', '-1']).operands, ['gracedone', '-1']);
  t.ok(parseKernelArgs(['-h']).help);
  t.equal(parseKernelArgs(['-s', 'list', 'check', 'ab']).operands[0], 'check');
  t.equal(firstOperand(['-fs', 'list', 'check', 'ab']), 'check', 'the value of -s is not the command');
  t.equal(firstOperand(['--s', 'list', 'check']), 'check', '--s abbreviates --storagedir');
  t.equal(firstOperand(['--stor=list', 'check']), 'check');
  t.equal(firstOperand(['verify', '--repair']), 'verify', 'unknown options are skipped');
  t.equal(firstOperand(['--', '-d']), '-d');
  t.equal(firstOperand(['-d']), undefined);
});

// --- store codecs -------------------------------------------------------------

const idArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b).toString('hex')) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: MAX_ID_BYTES }).map((b) => Buffer.from(b).toString('hex')) },
);
const timeArb = fc.oneof(fc.constantFrom(0, 1, MAX_TIME, 1700000000), fc.integer({ min: 0, max: MAX_TIME }));
const phArb = fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')));
const epochArb = fc.oneof(fc.constantFrom(1, 2, Number.MAX_SAFE_INTEGER), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
/** States as the decoders return them: every epoch field filled in. */
const stateArb: fc.Arbitrary<RecState> = fc
  .record({ time: timeArb, session: fc.boolean(), epoch: epochArb, ph: phArb, older: fc.option(fc.record({ epoch: epochArb, ph: phArb })) })
  .map((s) => (s.older && s.older.epoch >= s.epoch ? { ...s, older: s.epoch > 1 ? { epoch: s.epoch - 1, ph: s.older.ph } : null } : s));
const epochsArb = fc.tuple(epochArb, fc.nat()).map(([current, r]) => ({ current, recovery: r % current }));
const countArb = fc.oneof(fc.constantFrom(0, 1, Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const entryArb: fc.Arbitrary<JournalEntry> = fc.oneof(
  fc.record({ gen: countArb, seq: countArb, op: fc.constant('set' as const), id: idArb, state: stateArb, prev: fc.option(stateArb) }),
  fc.record({ gen: countArb, seq: countArb, op: fc.constant('del' as const), id: idArb, state: fc.constant(null), prev: fc.option(stateArb) }),
  fc.record({ gen: countArb, seq: countArb, op: fc.constant('lost' as const), id: fc.constant(''), state: fc.constant(null), prev: fc.constant(null) }),
  fc.record({ gen: countArb, seq: countArb, op: fc.constant('grace' as const), id: fc.constant(''), state: fc.constant(null), prev: fc.constant(null), epochs: epochsArb }),
);

/** Every line a codec writes, with the decoder that must read it back. */
type Encoded = { line: string; decode: (l: string) => unknown; value: unknown };
const encodedArb: fc.Arbitrary<Encoded> = fc.oneof(
  fc.tuple(idArb, stateArb).map(([id, st]) => ({ id, ...st })).map((r) => ({ line: encodeRecord(r), decode: decodeRecord, value: r })),
  entryArb.map((e) => ({ line: encodeJournalEntry(e), decode: decodeJournalEntry, value: e })),
  countArb.map((gen) => ({ line: encodeJournalHeader(gen), decode: decodeJournalHeader, value: { version: 2, gen } })),
  fc
    .record({ gen: countArb, records: fc.integer({ min: 0, max: 9_999_999_999 }), v40: fc.nat(), times: fc.integer({ min: 0, max: 9_999_999_999 }), epochs: epochsArb })
    .filter((h) => h.v40 <= h.records)
    .map((h) => ({ line: encodeSnapshotHeader(h), decode: decodeSnapshotHeader, value: { version: 2, ...h } })),
  fc
    .record({ time: timeArb, count: fc.integer({ min: 0, max: 9_999_999_999 }) })
    .map((x) => ({ line: encodeTimeLine(x.time, x.count), decode: decodeTimeLine, value: x })),
);
const strip = (line: string) => line.slice(0, -1);
/** fast-check's records have no prototype: compare as plain data. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

t.test('store codecs', async (t) => {
  await t.test('round trips', async (t) => {
    fc.assert(
      fc.property(encodedArb, (e) => {
        if (!e.line.endsWith('\n') || e.line.indexOf('\n') !== e.line.length - 1) return false;
        if (!/^[\x20-\x7e]*\n$/.test(e.line)) return false; // printable ASCII: cat/grep/awk-friendly
        return isDeepStrictEqual(plain(e.decode(strip(e.line))), plain(e.value));
      }),
      { seed: SEED, numRuns: 1500 },
    );
    t.pass('1500 lines read back');
    t.equal(encodeSnapshotHeader({ gen: 5, records: 1, v40: 0, times: 1 }).length, SNAPSHOT_HEADER_BYTES, 'fixed-width snapshot header');
    t.equal(encodeSnapshotHeader({ gen: 5, records: 1, v40: 0, times: 1, epochs: { current: 9e15, recovery: 8e15 } }).length, SNAPSHOT_HEADER_BYTES);
    t.equal(encodeTimeLine(MAX_TIME, 9_999_999_999).length, TIME_LINE_BYTES, 'fixed-width time line');
    t.equal(encodeTimeLine(0, 0).length, TIME_LINE_BYTES);
  });

  await t.test('any single-byte change to an encoded line is rejected', async (t) => {
    fc.assert(
      fc.property(encodedArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (e, at, delta) => {
        const body = strip(e.line);
        const i = at % body.length;
        const changed = body.slice(0, i) + String.fromCharCode((body.charCodeAt(i) + delta) & 0xff) + body.slice(i + 1);
        return e.decode(changed) === null && unseal(changed) === null;
      }),
      { seed: SEED, numRuns: 3000 },
    );
    t.pass('3000 mutated lines rejected');
  });

  await t.test('a torn (truncated) or extended line is rejected', async (t) => {
    fc.assert(
      fc.property(encodedArb, fc.nat(), (e, at) => {
        const body = strip(e.line);
        const cut = body.slice(0, at % body.length);
        return e.decode(cut) === null && e.decode(body + ' ') === null && e.decode(' ' + body) === null;
      }),
      { seed: SEED, numRuns: 1000 },
    );
    t.pass('truncations rejected');
  });

  await t.test('decoders reject well-sealed but malformed bodies', async (t) => {
    // Seal an arbitrary body exactly as the codecs do: "<body> <crc>".
    const sealed = (body: string) => `${body} ${crcHex(body)}`;
    t.equal(decodeRecord(sealed('abc 5 1')), null, 'odd-length id');
    t.equal(decodeRecord(sealed('ABCD 5 1')), null, 'uppercase id');
    t.equal(decodeRecord(sealed('abcd 5 2')), null, 'has_session not 0/1');
    t.equal(decodeRecord(sealed('abcd -5 1')), null, 'negative time');
    t.equal(decodeRecord(sealed(`abcd ${MAX_TIME + 1} 1`)), null, 'time past MAX_TIME');
    t.equal(decodeRecord(sealed('abcd 5 1 x')), null, 'extra field');
    t.equal(decodeRecord(sealed('a1'.repeat(MAX_ID_BYTES + 1) + ' 5 1')), null, 'id over 1024 bytes');
    t.same(decodeRecord(sealed('- 5 1 1 - - -')), { id: '', time: 5, session: true, epoch: 1, ph: null, older: null }, '"-" is the empty id');
    const ph = 'ab'.repeat(32);
    t.equal(decodeRecord(sealed('abcd 5 1 0 - - -')), null, 'epoch 0');
    t.equal(decodeRecord(sealed('abcd 5 1 3 - 3 -')), null, 'older epoch not older');
    t.equal(decodeRecord(sealed(`abcd 5 1 3 ${ph.slice(2)} - -`)), null, 'princhash of 31 bytes');
    t.equal(decodeRecord(sealed('abcd 5 1 3 - 2')), null, 'older princhash missing');
    t.equal(decodeRecord(sealed('abcd 5 1 3 - - x')), null, 'older princhash without its epoch');
    t.same(decodeRecord(sealed(`abcd 5 0 3 ${ph} 2 -`)), { id: 'abcd', time: 5, session: false, epoch: 3, ph, older: { epoch: 2, ph: null } }, 'both memberships');
    t.same(decodeJournalEntry(sealed('1 1 grace - 3 2')), { gen: 1, seq: 1, op: 'grace', id: '', state: null, prev: null, epochs: { current: 3, recovery: 2 } });
    t.equal(decodeJournalEntry(sealed('1 1 grace - 3 3')), null, 'recovery not older than current');
    t.equal(decodeJournalEntry(sealed('1 1 grace ab 3 2')), null, 'grace with an id');
    t.equal(decodeJournalEntry(sealed('1 1 set ab 5 1 2 - - - - -')), null, 'a version 2 state and a version 1 one');
    t.equal(decodeJournalEntry(sealed('1 1 set ab - - - -')), null, 'set without a state');
    t.equal(decodeJournalEntry(sealed('1 1 del ab 5 1 - -')), null, 'del with a state');
    t.equal(decodeJournalEntry(sealed('1 1 lost ab - - - -')), null, 'lost with an id');
    t.equal(decodeJournalEntry(sealed('1 1 put ab 5 1 - -')), null, 'unknown op');
    t.equal(decodeJournalHeader(sealed('#nfsdcltrack-journal v3 gen=1')), null, 'unknown version');
    t.equal(decodeSnapshotHeader(sealed('#nfsdcltrack-snapshot v1 gen=0000000000000001 records=0000000001 v40=0000000002 times=0000000000')), null, 'v40 > records');
    t.equal(decodeSnapshotHeader(sealed('#nfsdcltrack-snapshot v2 gen=0000000000000001 records=0000000001 v40=0000000000 times=0000000000')), null, 'v2 without epochs');
  });

  await t.test('version 1 lines (written before the cld daemon) read as members of epoch 1', async (t) => {
    const sealed = (body: string) => `${body} ${crcHex(body)}`;
    const v1 = { epoch: 1, ph: null, older: null };
    t.same(decodeRecord(sealed('abcd 5 1')), { id: 'abcd', time: 5, session: true, ...v1 });
    t.same(decodeJournalHeader(sealed('#nfsdcltrack-journal v1 gen=7')), { version: 1, gen: 7 });
    t.same(decodeSnapshotHeader(sealed('#nfsdcltrack-snapshot v1 gen=0000000000000002 records=0000000001 v40=0000000001 times=0000000000')), {
      version: 1, gen: 2, records: 1, v40: 1, times: 0, epochs: { current: 1, recovery: 0 },
    });
    t.same(decodeJournalEntry(sealed('2 1 set ab 5 1 4 0')), { gen: 2, seq: 1, op: 'set', id: 'ab', state: { time: 5, session: true, ...v1 }, prev: { time: 4, session: false, ...v1 } });
    t.same(decodeJournalEntry(sealed('2 2 del ab - - 5 1')), { gen: 2, seq: 2, op: 'del', id: 'ab', state: null, prev: { time: 5, session: true, ...v1 } });
    t.same(decodeJournalEntry(sealed('2 3 lost - - - - -')), { gen: 2, seq: 3, op: 'lost', id: '', state: null, prev: null });
    t.notOk(decodeJournalEntry(sealed('2 3 set ab 5 1 -')), 'short v1 state');
  });

  await t.test('journal entries: the scanning decoder agrees with the grammar', async (t) => {
    // The format of an entry body, as a regex: the decoder scans by hand (it
    // runs cold on every upcall), so it is checked against this on sealed
    // bodies made of well-formed fields, near misses, and entries with one
    // field replaced.
    const N = '(\\d{1,16})';
    const PH = '(-|[0-9a-f]{64})';
    const V2 = `(?:${N} ([01]) ${N} ${PH} (?:${N} ${PH}|- -)|- - - - - -)`;
    const V1 = `(?:${N} ([01])|- -)`;
    const HEAD = `^${N} ${N} (set|del|lost) (-|(?:[0-9a-f]{2}){1,1024})`;
    const ENTRY2 = new RegExp(`${HEAD} ${V2} ${V2}$`);
    const ENTRY1 = new RegExp(`${HEAD} ${V1} ${V1}$`);
    const GRACE = new RegExp(`^${N} ${N} grace - ${N} ${N}$`);
    const ph = (p: string | undefined) => (p === undefined || p === '-' ? null : p);
    const state = (f: (string | undefined)[]) => {
      const [time, sess, epoch, p, oe, op] = f;
      if (time === undefined) return null;
      if (Number(time) > MAX_TIME || (epoch !== undefined && Number(epoch) < 1) || (oe !== undefined && !(Number(oe) >= 1 && Number(oe) < Number(epoch)))) return undefined;
      return { time: Number(time), session: sess === '1', epoch: epoch === undefined ? 1 : Number(epoch), ph: ph(p), older: oe === undefined ? null : { epoch: Number(oe), ph: ph(op) } };
    };
    const model = (body: string): JournalEntry | null => {
      const g = GRACE.exec(body);
      if (g) {
        const [current, recovery] = [Number(g[3]), Number(g[4])];
        return current >= 1 && recovery < current ? { gen: Number(g[1]), seq: Number(g[2]), op: 'grace', id: '', state: null, prev: null, epochs: { current, recovery } } : null;
      }
      const m2 = ENTRY2.exec(body);
      const m1 = m2 ? null : ENTRY1.exec(body);
      const m = m2 ?? m1;
      if (!m) return null;
      const w = m2 ? 6 : 2;
      const [op, id, st, prev] = [m[3] as JournalEntry['op'], m[4] === '-' ? '' : m[4], state(m.slice(5, 5 + w)), state(m.slice(5 + w, 5 + 2 * w))];
      if (st === undefined || prev === undefined) return null;
      const e = { gen: Number(m[1]), seq: Number(m[2]), op, id, state: st, prev };
      if (op === 'set') return st ? e : null;
      if (op === 'del') return st ? null : e;
      return !st && !prev && id === '' ? e : null;
    };
    const token = fc.constantFrom('-', '0', '1', '2', '01', '12', 'set', 'del', 'lost', 'grace', 'se', 'ab', 'abc', 'AB', '', ' ', '5 1', '- -', '1  1', 'ab'.repeat(32), '- - - - - -', '5 1 2 - - -', '5 0 3 - 2 -',
      String(MAX_TIME), String(MAX_TIME + 1), '9'.repeat(16), '9'.repeat(17));
    const soup = fc.array(token, { minLength: 1, maxLength: 10 }).map((ts) => ts.join(' '));
    const replaced = fc.tuple(entryArb, fc.nat(), token).map(([e, at, tok]) => {
      const f = encodeJournalEntry(e).split(' ').slice(0, -1);
      f[at % f.length] = tok;
      return f.join(' ');
    });
    const whole = entryArb.map((e) => encodeJournalEntry(e).slice(0, -10));
    fc.assert(
      fc.property(fc.oneof(soup, replaced, whole), (body) =>
        isDeepStrictEqual(plain(decodeJournalEntry(`${body} ${crcHex(body)}`)), plain(model(body))),
      ),
      { seed: SEED, numRuns: 4000 },
    );
    t.pass('4000 sealed bodies decoded as the grammar says');
  });

  await t.test('record lines sort like their keys (LC_ALL=C sort)', async (t) => {
    fc.assert(
      fc.property(fc.uniqueArray(idArb, { maxLength: 30 }), fc.array(stateArb, { minLength: 30, maxLength: 30 }), (ids, states) => {
        const lines = ids.map((id, i) => encodeRecord({ id, ...states[i] }));
        const byLine = [...lines].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const byKey = [...lines].sort((a, b) => (recordKey(a) < recordKey(b) ? -1 : recordKey(a) > recordKey(b) ? 1 : 0));
        return byLine.every((l, i) => l === byKey[i]) && lines.every((l, i) => recordKey(l) === keyOf(ids[i]));
      }),
      { seed: SEED, numRuns: 300 },
    );
    t.pass('sorted');
  });
});

// --- the epoch rules (lib/tracking.ts) against the model of nfsdcld -----------------

t.test('tracking: create, remove, check, grace start and end agree with nfsdcld on any sequence', async (t) => {
  const names = ['a', 'b', 'c', 'd'].map((n) => Buffer.from(`client-${n}`));
  const phs = [null, Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
  type Op = { cmd: number; n: number; ph: number; vers: number };
  const opArb: fc.Arbitrary<Op> = fc.record({
    cmd: fc.constantFrom(Cmd.Create, Cmd.Create, Cmd.Remove, Cmd.Check, Cmd.GraceStart, Cmd.GraceDone),
    n: fc.nat({ max: names.length - 1 }),
    ph: fc.nat({ max: phs.length - 1 }),
    vers: fc.constantFrom(1, 2, 2),
  });
  let compared = 0;
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const model = new CldModel();
      let ep: Epochs = INITIAL_EPOCHS;
      const recs = new Map<string, RecState>();
      const get = (id: string) => liveState(recs.get(id) ?? null, ep);
      const put = (id: string, s: RecState | null) => (s ? recs.set(id, s) : recs.delete(id));
      let xid = 0;
      for (const op of ops) {
        const name = names[op.n];
        const id = name.toString('hex');
        const ph = op.vers === 2 ? phs[op.ph] : null;
        const msg = encodeMessage({ vers: op.vers, cmd: op.cmd, xid: ++xid }, op.cmd <= Cmd.Check ? { name, princhash: ph } : undefined);
        const out = model.apply(msg);
        const status = decodeHeader(out[out.length - 1]).status;
        const inGrace = () => {
          if (ep.recovery === 0) ep = graceStarted(ep);
        };
        if (op.cmd === Cmd.Create) put(id, created(get(id), ep, { time: 0, session: false, ph: ph ? ph.toString('hex') : null }));
        else if (op.cmd === Cmd.Remove) put(id, removedFromCurrent(get(id), ep));
        else if (op.cmd === Cmd.Check) {
          inGrace();
          const ok = recoveryMembership(get(id), ep) !== null;
          if (ok) put(id, created(get(id), ep, { time: 0, session: false, ph: null }));
          if ((status === 0) !== ok) return false;
        } else if (op.cmd === Cmd.GraceDone) {
          inGrace();
          ep = graceEnded(ep);
        } else {
          ep = graceStarted(ep);
          const sent = out.slice(0, -1).map((d) => Buffer.from(d.subarray(10, 10 + d.readUInt16LE(8))).toString('hex') + '/' + (d.length > 1034 && d[1034] ? d.subarray(1035, 1067).toString('hex') : '-')).sort();
          const ours = [...recs.keys()].flatMap((k) => {
            const m = recoveryMembership(get(k), ep);
            return m ? [`${k}/${(op.vers === 2 && m.ph) || '-'}`] : []; // a v1 downcall has no princhash
          }).sort();
          compared++;
          if (!isDeepStrictEqual(sent, ours)) return false;
        }
        if ((model.recovery === 0) !== (ep.recovery === 0)) return false;
      }
      return true;
    }),
    { seed: SEED, numRuns: 2000 },
  );
  t.ok(compared > 1000, `${compared} grace starts compared, with statuses and epochs after every step`);
});

t.test('tracking: the store keeps the right clients whatever the clock does', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-epochs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Each step's clock is earlier than the last: stepped back again and again.
  let clock = 2_000_000_000;
  const store = new Store({ dir, now: () => (clock -= 3600) });
  const id = (s: string) => Buffer.from(s).toString('hex');
  const create = (s: string) => store.mutate((tx) => tx.put(id(s), created(tx.get(id(s)), tx.epochs, { time: store.time(), session: false, ph: null })));
  await create('reclaims');
  await create('does-not');
  await store.mutate((tx) => tx.setEpochs(graceStarted(tx.epochs)));
  await create('reclaims');
  await store.mutate((tx) => tx.setEpochs(graceEnded(tx.epochs)));
  const view = store.read();
  try {
    t.ok(view.get(id('reclaims')), 'the client that reclaimed (at an earlier time) is kept');
    t.equal(view.get(id('does-not')), null, 'the one that did not (with a later time) is gone');
    t.same([...store.records(view)].map((r) => Buffer.from(r.id, 'hex').toString()), ['reclaims']);
  } finally {
    view.close();
  }
  await store.compact();
  const after = store.read();
  try {
    t.same([...store.records(after)].map((r) => Buffer.from(r.id, 'hex').toString()), ['reclaims'], 'and so after compaction');
    t.same(after.epochs, { current: 2, recovery: 0 });
  } finally {
    after.close();
  }
});

t.test('a version 1 store (written before the daemon) is read as sound and compacted to version 2', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-v1-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sealed = (body: string) => `${body} ${crcHex(body)}\n`;
  fs.writeFileSync(path.join(dir, 'clients.snap'), sealed('#nfsdcltrack-snapshot v1 gen=0000000000000002 records=0000000002 v40=0000000001 times=0000000001') + sealed('0a0b 1795481667 0') + sealed('0c0d 1795481668 1') + sealed('~ 01795481668 0000000001'));
  fs.writeFileSync(path.join(dir, 'clients.journal'), sealed('#nfsdcltrack-journal v1 gen=2') + sealed('2 1 set 0e0f 1795481669 1 - -'));
  const store = new Store({ dir });
  const view = store.read();
  try {
    t.ok(view.healthy);
    t.same([...store.records(view)].map((r) => [r.id, r.epoch]), [['0a0b', 1], ['0c0d', 1], ['0e0f', 1]], 'every record live, in epoch 1');
    t.equal(view.snapshot!.damagedSeen, 0, 'no line counted as damaged');
  } finally {
    view.close();
  }
  t.ok(await store.compact());
  t.same(fs.readdirSync(dir).sort(), ['clients.id', 'clients.journal', 'clients.snap'], 'no damaged copy kept; the version 1 store got its id (clients.id) at this compaction');
  t.match(fs.readFileSync(path.join(dir, 'clients.snap'), 'latin1'), /^#nfsdcltrack-snapshot v2 .*\n0a0b 1795481667 0 1 - - - [0-9a-f]{8}\n/);
});

t.test('lock liveness: the owner file and the rule', async (t) => {
  const host = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:4026531836';
  const owner = { pid: 4242, start: '123456', host, token: 'k1x2y3' };
  t.same(parseOwnerName(ownerName(owner)), owner, 'the name round-trips');
  t.equal(parseOwnerName('owner.12.x.y.z'), null, 'garbage is no owner');
  t.equal(startTimeOf('7 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 999 20'), '999', 'field 22, past a name with ") " in it');
  t.equal(startTimeOf('7 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 999 20'), null, 'a zombie is dead');
  const now = 1_000_000;
  const alive = () => '123456';
  const gone = () => null;
  const reused = () => '777';
  t.notOk(holderIsDead(owner, host, alive, now - 60_000, now, 4000), 'same host, live: kept however old its mtime');
  t.ok(holderIsDead(owner, host, gone, now, now, 4000), 'same host, pid gone: dead at once');
  t.ok(holderIsDead(owner, host, reused, now, now, 4000), 'same host, pid reused: dead');
  const other = 'ffffffff-4b5a-6978-8796-a5b4c3d2e1f0:4026531836';
  t.notOk(holderIsDead(owner, other, gone, now - 3000, now, 4000), 'another host: by the mtime, fresh');
  t.ok(holderIsDead(owner, other, alive, now - 5000, now, 4000), 'another host: by the mtime, stale');
  t.ok(holderIsDead(null, host, alive, now + 3_600_000, now, 4000), 'no owner file, dated in the future: stale');
  t.notOk(holderIsDead(null, null, alive, now + 1000, now, 4000), 'a little ahead (clock skew) is not');
});

t.test('verify finds a store written across grace periods sound (prev states as stored)', async (t) => {
  const { analyzeStore } = await import('../lib/admin/verify');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-prev-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new Store({ dir });
  const id = Buffer.from('client').toString('hex');
  const create = () => store.mutate((tx) => tx.put(id, created(tx.get(id), tx.epochs, { time: 5, session: false, ph: null })));
  const grace = (f: (e: Epochs) => Epochs) => store.mutate((tx) => tx.setEpochs(f(tx.epochs)));
  // Found by the kernel e2e: the sequence a reclaiming client goes through, then a remove.
  await grace(graceStarted);
  await grace(graceEnded);
  await create();
  await grace(graceStarted);
  await create();
  await grace(graceEnded);
  await store.mutate((tx) => tx.put(id, removedFromCurrent(tx.get(id), tx.epochs)));
  const errors = analyzeStore(dir).findings.filter((f) => f.severity === 'error');
  t.same(errors, [], 'no finding');
});

// --- the daemon's fast paths: each the same answer as the plain one ---------------

t.test('crc32Bytes, four bytes a step, is zlib crc32 on any range', async (t) => {
  const { crc32Bytes } = await import('../lib/crc32');
  const { crc32 } = await import('zlib');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (a, x, y) => {
      const b = Buffer.from(a);
      const from = b.length ? x % b.length : 0;
      const to = from + (b.length - from ? y % (b.length - from + 1) : 0);
      return crc32Bytes(b, from, to) === crc32(b.subarray(from, to)) >>> 0;
    }),
    { seed: SEED, numRuns: 3000 },
  );
  t.pass('3000 ranges');
});

t.test('the record line decoder, scanning each field once, reads what the format says and nothing else', async (t) => {
  // The format as a regular expression and the rules beside it: the plain
  // reading the decoder's position-by-position scan must agree with.
  const LINE = /^(-|(?:[0-9a-f]{2}){1,1024}) (\d{1,16}) ([01])(?: (\d{1,16}) (-|[0-9a-f]{64}) (-|\d{1,16}) (-|[0-9a-f]{64}))? ([0-9a-f]{8})$/;
  const plainDecode = (line: string): ClientRecord | null => {
    const m = LINE.exec(line);
    if (!m || crcHex(line.slice(0, -9)) !== m[8]) return null;
    const [, id, time, sess, epoch, ph, oe, oph] = m;
    const rec = { id: id === '-' ? '' : id, time: Number(time), session: sess === '1', epoch: 1, ph: null as string | null, older: null as ClientRecord['older'] };
    if (rec.time > MAX_TIME) return null;
    if (epoch === undefined) return rec;
    rec.epoch = Number(epoch);
    rec.ph = ph === '-' ? null : ph;
    if (rec.epoch < 1) return null;
    if (oe === '-') return oph === '-' ? rec : null;
    if (Number(oe) < 1 || Number(oe) >= rec.epoch) return null;
    rec.older = { epoch: Number(oe), ph: oph === '-' ? null : oph };
    return rec;
  };
  // Sound lines (both versions), then an edit: a character replaced, inserted
  // or deleted from an alphabet of delimiters, digits, hex and near misses;
  // mostly sealed again, so that the field checks alone decide.
  const soundArb = fc.tuple(idArb, stateArb, fc.boolean()).map(([id, st, v1]) => {
    const line = strip(encodeRecord({ id, ...st }));
    return v1 ? `${line.split(' ').slice(0, 3).join(' ')} 00000000` : line;
  });
  // And lines put together from fields near the rules' edges, for the checks between fields.
  const num = fc.constantFrom('0', '1', '2', '3', '01', '12', String(MAX_TIME), String(MAX_TIME + 1), '9'.repeat(16), '9'.repeat(17), '', 'x');
  const hexOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
  const phField = fc.oneof(fc.constant('-'), hexOf(32), hexOf(31), hexOf(33), hexOf(32).map((h) => h.toUpperCase()), fc.constant('--'));
  const fieldsArb = fc
    .tuple(fc.oneof(fc.constant('-'), hexOf(1), hexOf(20), hexOf(1024), hexOf(1025), hexOf(3).map((h) => h.slice(1))), num, fc.constantFrom('0', '1', '2'), fc.option(fc.tuple(num, phField, fc.oneof(num, fc.constant('-')), phField)))
    .map(([id, time, sess, ep]) => `${[id, time, sess, ...(ep ?? [])].join(' ')} 00000000`);
  const editArb = fc.record({ op: fc.constantFrom('replace', 'insert', 'delete', 'none'), at: fc.nat(), c: fc.constantFrom(...' -0159afgAF:/x'), reseal: fc.nat(9) });
  fc.assert(
    fc.property(fc.oneof(soundArb, fieldsArb), fc.array(editArb, { maxLength: 3 }), (sound, edits) => {
      let body = sound.slice(0, -9);
      let seal = true;
      for (const e of edits) {
        const at = e.at % (body.length + 1);
        if (e.op === 'replace') body = body.slice(0, at) + e.c + body.slice(at + 1);
        else if (e.op === 'insert') body = body.slice(0, at) + e.c + body.slice(at);
        else if (e.op === 'delete') body = body.slice(0, at) + body.slice(at + 1);
        if (e.reseal === 0) seal = false;
      }
      const line = `${body} ${seal ? crcHex(body) : sound.slice(-8)}`;
      return isDeepStrictEqual(plain(decodeRecord(line)), plain(plainDecode(line)));
    }),
    { seed: SEED, numRuns: 20000 },
  );
  t.pass('20000 edited lines');
});

t.test('a journal parse carried on from an earlier read is the parse from scratch', async (t) => {
  const { parseJournal } = await import('../lib/store/journal');
  // Lines as writers leave them: entries, damaged ones, a torn tail, a second header.
  const lineArb = fc.oneof(
    { weight: 8, arbitrary: entryArb.map(encodeJournalEntry) },
    { weight: 1, arbitrary: entryArb.map((e) => encodeJournalEntry(e).replace(/ [0-9a-f]{8}\n$/, ' 00000000\n')) },
    { weight: 1, arbitrary: fc.constant(encodeJournalHeader(3)) },
  );
  const fileArb = fc.tuple(fc.boolean(), fc.array(lineArb, { maxLength: 12 }), fc.string({ maxLength: 30 }));
  fc.assert(
    fc.property(fileArb, fileArb, ([h, a, tornA], [, b, tornB]) => {
      const head = h ? encodeJournalHeader(2) : '';
      const first = Buffer.from(head + a.join('') + tornA, 'latin1');
      // What a later read finds: the complete lines as they were, more appended (the torn bytes perhaps cut or completed).
      const earlier = parseJournal(first);
      const later = Buffer.concat([first.subarray(0, earlier.completeEnd), Buffer.from(b.join('') + tornB, 'latin1')]);
      return isDeepStrictEqual(plain(parseJournal(later, earlier)), plain(parseJournal(later)));
    }),
    { seed: SEED, numRuns: 1500 },
  );
  t.pass('1500 journals read in two goes');
});

t.test("a store's journal read carried on never hides another writer's change", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-seen-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const daemon = new Store({ dir });
  const other = new Store({ dir });
  const id = (s: string) => Buffer.from(s).toString('hex');
  const put = (store: Store, s: string) => store.mutate((tx) => tx.put(id(s), created(tx.get(id(s)), tx.epochs, { time: 5, session: true, ph: null })));
  const seen = (s: string) => {
    const v = daemon.read();
    try {
      return { healthy: v.healthy, has: v.get(id(s)) !== null };
    } finally {
      v.close();
    }
  };
  await put(daemon, 'a');
  await put(other, 'b');
  t.same(seen('b'), { healthy: true, has: true }, 'an append by another process');
  const journal = path.join(dir, 'clients.journal');
  const text = fs.readFileSync(journal, 'latin1');
  const at = text.indexOf(` ${id('a')} `) + 2;
  fs.writeFileSync(journal, text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1), 'latin1');
  t.same(seen('a'), { healthy: false, has: false }, 'a line damaged in place, same size, same inode');
  fs.writeFileSync(journal, text, 'latin1');
  t.same(seen('a'), { healthy: true, has: true }, 'and put back');
  await other.compact();
  await put(other, 'c');
  t.same([seen('a').has, seen('b').has, seen('c').has], [true, true, true], 'a compaction by another process, and a write after it');
  fs.writeFileSync(journal, encodeJournalHeader(3), 'latin1');
  t.equal(seen('c').has, false, 'a journal replaced by a shorter one');
});

t.test('a grace start refuses a snapshot whose sound lines are not in strictly increasing order', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-order-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ep = { current: 2, recovery: 1 };
  // Keys sharing long prefixes, one a prefix of another, and the empty id.
  const idsArb = fc.uniqueArray(fc.tuple(fc.constantFrom('', 'ab'.repeat(30), 'ab'.repeat(31)), fc.stringMatching(/^(?:[0-9a-f]{2}){0,2}$/)).map(([a, b]) => a + b), { minLength: 1, maxLength: 12 });
  const editArb = fc.record({ kind: fc.constantFrom('swap', 'dup', 'damage'), i: fc.nat(), j: fc.nat() });
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(idsArb, fc.array(editArb, { maxLength: 3 }), async (ids, edits) => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const store = new Store({ dir });
      const recs = ids.map((id) => ({ id, time: 5, session: true, epoch: 1, ph: null, older: null })).sort((a, b) => (keyOf(a.id) < keyOf(b.id) ? -1 : 1));
      await store.replaceAll(() => recs, () => ep);
      const snap = path.join(dir, 'clients.snap');
      const text = fs.readFileSync(snap, 'latin1');
      const head = text.indexOf('\n') + 1;
      const lines = text.slice(head).split('\n').slice(0, recs.length);
      const tail = text.slice(head + lines.reduce((n, l) => n + l.length + 1, 0));
      const sound = lines.map(() => true);
      for (const e of edits) {
        const i = e.i % lines.length;
        const j = e.j % lines.length;
        if (e.kind === 'swap') [lines[i], lines[j], sound[i], sound[j]] = [lines[j], lines[i], sound[j], sound[i]];
        else if (e.kind === 'dup') [lines[i], sound[i]] = [lines[j], sound[j]];
        else [lines[i], sound[i]] = [lines[i].replace(/ 5 1 /, ' 6 1 '), false];
      }
      fs.writeFileSync(snap, text.slice(0, head) + lines.map((l) => l + '\n').join('') + tail, 'latin1');
      const keys = lines.filter((_, k) => sound[k]).map((l) => l.slice(0, l.indexOf(' ')));
      const ordered = keys.every((k, n) => n === 0 || keys[n - 1] < k);
      const v = store.read();
      try {
        const got: string[] = [];
        store.eachReclaimable(v, ep, (b, from, to) => got.push(b.toString('latin1', from, to)) > 0);
        return ordered && got.length === keys.length;
      } catch (e) {
        refused++;
        return !ordered && /not sorted/.test((e as Error).message);
      } finally {
        v.close();
      }
    }),
    { seed: SEED, numRuns: 400 },
  );
  t.ok(refused > 20, `refused ${refused} of 400 stores`);
});

t.test('a grace start from the bytes hands out what records() and recoveryMembership give', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-raw-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const viaRecords = (store: Store, ep: Epochs) => {
    const v = store.read();
    try {
      return [...store.records(v, undefined, ep)].flatMap((r) => {
        const m = recoveryMembership(r, ep);
        return m ? [[r.id, m.ph]] : [];
      });
    } finally {
      v.close();
    }
  };
  const viaBytes = (store: Store, ep: Epochs) => {
    const v = store.read();
    const out: [string, string | null][] = [];
    try {
      store.eachReclaimable(v, ep, (b, from, to, ph) => {
        out.push([b.toString('latin1', from, to), ph < 0 ? null : b.toString('latin1', ph, ph + 64)]);
        return true;
      });
      return out;
    } finally {
      v.close();
    }
  };
  const recArb = fc.tuple(idArb, stateArb).map(([id, st]) => ({ id, ...st }));
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(recArb, { selector: (r) => r.id, maxLength: 40 }), fc.array(fc.tuple(fc.nat(), fc.option(stateArb)), { maxLength: 8 }), epochsArb, async (recs, changes, ep) => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const store = new Store({ dir });
      const sorted = [...recs].sort((a, b) => (keyOf(a.id) < keyOf(b.id) ? -1 : keyOf(a.id) > keyOf(b.id) ? 1 : 0));
      await store.replaceAll(() => sorted, () => ep);
      // Journal entries over some of them, and for new ids.
      await store.mutate((tx) => {
        for (const [k, st] of changes) tx.put(recs.length && k % 3 ? recs[k % recs.length].id : `ab${k.toString(16).padStart(4, '0')}`, st);
      });
      const e: Epochs = { current: ep.current, recovery: ep.recovery };
      return isDeepStrictEqual(viaBytes(store, e), viaRecords(store, e));
    }),
    { seed: SEED, numRuns: 150 },
  );
  t.pass('150 stores');
  // Lines that cross the 256 KiB read chunks, and a damaged one.
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  const store = new Store({ dir });
  const ep = { current: 2, recovery: 1 };
  const long = Array.from({ length: 700 }, (_, i) => ({ id: i.toString(16).padStart(4, '0') + 'c1'.repeat(1000), time: 5, session: true, epoch: 1, ph: i % 2 ? 'f0'.repeat(32) : null, older: null }));
  await store.replaceAll(() => long, () => ep);
  const want = viaRecords(store, ep);
  t.equal(want.length, 700);
  t.same(viaBytes(store, ep), want, '700 lines of 2 KiB, across three read chunks');
  const snap = path.join(dir, 'clients.snap');
  const text = fs.readFileSync(snap, 'latin1');
  const damaged = text.replace(`\n0100${'c1'.repeat(1000)} 5 1`, `\n0100${'c1'.repeat(1000)} 6 1`);
  fs.writeFileSync(snap, damaged, 'latin1');
  const v = store.read();
  try {
    const got: string[] = [];
    store.eachReclaimable(v, ep, (b, from, to) => got.push(b.toString('latin1', from, to)) > 0);
    t.equal(got.length, 699, 'the damaged line is skipped');
    t.equal(v.snapshot!.damagedSeen, 1, 'and counted');
  } finally {
    v.close();
  }
});

t.test('snapshot lookups: every probe level, lines longer than a short probe, one reader for many lookups', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-probe-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // 3,000 clients, every 7th with an id of 1,024 bytes (a line of ~2,100
  // bytes: past the first, short probe read), the rest short; sorted by key.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const hexOf = (n: number, len: number) => Array.from({ length: len }, (_, k) => ((n * 31 + k * 17) % 256).toString(16).padStart(2, '0')).join('');
  const recs = Array.from({ length: 3000 }, (_, i) => ({
    id: i % 7 === 0 ? `${i.toString(16).padStart(8, '0')}${hexOf(i, 1020)}` : `${i.toString(16).padStart(8, '0')}${hexOf(i, 4 + (i % 40))}`,
    time: 1_700_000_000 + i,
    session: i % 3 !== 0,
    epoch: 1,
    ph: i % 2 ? hexOf(i + 1, 32) : null,
    older: null,
  })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  await new Store({ dir }).replaceAll(() => recs, () => ({ current: 1, recovery: 0 }));
  t.ok(fs.statSync(path.join(dir, 'clients.snap')).size > 16 * 16384, 'the snapshot is several search levels deep');
  const view = new Store({ dir }).read();
  try {
    let wrong = 0;
    // In a random order, each twice, with absent ids (a byte more or less) between.
    const order = [...recs, ...recs].map((r) => ({ r, k: rnd() })).sort((a, b) => a.k - b.k).map((x) => x.r);
    for (const r of order) {
      const got = view.get(r.id);
      if (!got || got.time !== r.time || got.session !== r.session || got.ph !== r.ph) wrong++;
      if (view.get(`${r.id}00`) !== null || view.get(r.id.slice(0, -2)) !== null) wrong++;
    }
    t.equal(wrong, 0, `${order.length} lookups of present ids and ${2 * order.length} of absent ones, all right`);
    t.equal(view.snapshot!.damagedSeen, 0, 'no sound line counted as damaged');
  } finally {
    view.close();
  }
});
