// Tests for lib/log.ts against a real AF_UNIX SOCK_DGRAM syslog socket.
// Node cannot bind one, so a small python3 process does: it receives the
// datagrams (with SO_PASSCRED, to see the sender's credentials) and prints
// them as JSON when its stdin is closed.
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import * as ts from 'typescript';
import fc from 'fast-check';
import {
  createLogger,
  silentLogger,
  sanitizeForSyslog,
  loggerInput,
  LOGGER_PATH,
  LOGGER_TIMEOUT_MS,
  MAX_MESSAGE_BYTES,
  MAX_BUFFERED,
  DEFAULT_SYSLOG_SOCKET,
  LOG_ERR,
  LOG_WARNING,
  LOG_INFO,
} from '../lib/log';

const PY_RECEIVER = String.raw`
import socket, sys, json, os, select, struct
path, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
out = []
def rd():
    msg, anc, _f, _a = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for lvl, typ, data in anc:
        if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack('i', data[:4])[0]
    out.append({'msg': msg.decode('utf-8', 'replace'), 'bytes': len(msg), 'credPid': pid})
print('ready', flush=True)
watch = [s, 0] if mode == 'read' else [0]
while True:
    r, _w, _x = select.select(watch, [], [], 60)
    if not r:
        break
    if s in r:
        rd()
    elif 0 in r and os.read(0, 4096) == b'':
        break
if mode == 'read':
    s.setblocking(False)
    while True:
        try:
            rd()
        except BlockingIOError:
            break
print(json.dumps(out), flush=True)
`;

interface Dgram {
  msg: string;
  bytes: number;
  credPid: number | null;
}
interface Receiver {
  socket: string;
  done(): Promise<Dgram[]>;
}

const hasPython = spawnSync('python3', ['-c', 'import socket; socket.AF_UNIX'], { stdio: 'ignore' }).status === 0;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-log-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let nsock = 0;

function startReceiver(mode: 'read' | 'noread' = 'read'): Promise<Receiver> {
  const socket = path.join(tmp, `sock${nsock++}`);
  const py = spawn('python3', ['-c', PY_RECEIVER, socket, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  py.stdout.setEncoding('utf8');
  const closed = new Promise<number | null>(resolve => py.on('close', code => resolve(code)));
  return new Promise((resolve, reject) => {
    py.on('error', reject);
    py.stdout.on('data', (d: string) => {
      const wasReady = stdout.startsWith('ready\n');
      stdout += d;
      if (!wasReady && stdout.startsWith('ready\n')) {
        resolve({
          socket,
          async done(): Promise<Dgram[]> {
            py.stdin.end();
            const code = await closed;
            if (code !== 0) throw new Error(`receiver exited ${code}`);
            return JSON.parse(stdout.slice('ready\n'.length)) as Dgram[];
          },
        });
      }
    });
    closed.then(code => reject(new Error(`receiver exited early (${code}): ${stdout}`)));
  });
}

/** "<PRI>Mmm dd hh:mm:ss tag[pid]: text" (logger's local format, as glibc syslog(3)). */
function parse(d: Dgram): { pri: number; tag: string; pid: number; text: string } {
  const m = /^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ([^[\]: ]+)\[(\d+)\]: (.*)$/s.exec(d.msg);
  if (!m) throw new Error(`not a syslog record: ${JSON.stringify(d.msg)}`);
  return { pri: Number(m[1]), tag: m[2]!, pid: Number(m[3]), text: m[4]! };
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** A logger wrapper that counts its runs, then execs the real logger. */
function countingLogger(): { path: string; runs(): number } {
  const count = path.join(tmp, `count${nsock++}`);
  const script = path.join(tmp, `logger${nsock++}.sh`);
  fs.writeFileSync(script, `#!/bin/sh\necho run >> '${count}'\nexec ${LOGGER_PATH} "$@"\n`, { mode: 0o755 });
  return {
    path: script,
    runs: () => (fs.existsSync(count) ? fs.readFileSync(count, 'utf8').split('\n').filter(Boolean).length : 0),
  };
}

/** A temp file standing in for fd 2. */
function stderrFile(): { fd: number; read(): string } {
  const file = path.join(tmp, `stderr${nsock++}`);
  const fd = fs.openSync(file, 'w+');
  t.teardown(() => fs.closeSync(fd));
  return { fd, read: () => fs.readFileSync(file, 'utf8') };
}

/**
 * Run bare node (no tap loaders: tap's processinfo injects NODE_OPTIONS into
 * children it sees spawned, so go through env -i) with exactly `env`.
 */
function bareNode(args: string[], env: Record<string, string> = {}) {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return spawnSync('/usr/bin/env', ['-i', ...vars, process.execPath, ...args], { encoding: 'utf8', timeout: 10000 });
}

/** lib/log.ts transpiled to plain CommonJS, for children run by bare node (no loader, as in production). */
let transpiled: string | undefined;
function transpiledLog(): string {
  if (transpiled) return transpiled;
  const src = fs.readFileSync(path.join(__dirname, '..', 'lib', 'log.ts'), 'utf8');
  const out = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
  });
  transpiled = path.join(tmp, 'log.js');
  fs.writeFileSync(transpiled, out.outputText);
  return transpiled;
}

t.test('environment', async t => {
  t.ok(hasPython, 'python3 is needed to bind an AF_UNIX datagram socket');
  const v = spawnSync(LOGGER_PATH, ['--version'], { encoding: 'utf8' });
  t.equal(v.status, 0, `${LOGGER_PATH} exists`);
  t.match(v.stdout, /util-linux/, 'logger is util-linux logger');
  t.comment(v.stdout.trim());
  const help = spawnSync(LOGGER_PATH, ['--help'], { encoding: 'utf8' }).stdout;
  for (const flag of ['--id', '--prio-prefix', '--socket', '--tag']) t.match(help, flag, `logger supports ${flag}`);
});

t.test('syslog records: priority, tag with our pid, text; one logger run', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const counter = countingLogger();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, loggerPath: counter.path, debug: true });
  log.error('an error: code 5');
  log.warn('a warning');
  log.debug('a debug line');
  log.debug(() => 'a lazy debug line');
  t.equal(log.spawns, 0, 'nothing spawned before flush');
  t.equal(counter.runs(), 0);
  const start = process.hrtime.bigint();
  log.flush();
  t.comment(`flush of 4 messages (one spawnSync of logger via a sh wrapper): ${ms(start).toFixed(2)} ms`);
  t.equal(log.spawns, 1, 'one spawn');
  t.equal(counter.runs(), 1, 'logger ran exactly once for four messages');
  log.flush();
  t.equal(log.spawns, 1, 'second flush with nothing pending does not spawn');
  const got = await rx.done();
  t.equal(got.length, 4, 'four datagrams');
  const recs = got.map(parse);
  t.same(
    recs.map(r => [r.pri, r.tag, r.pid, r.text]),
    [
      [27, 'nfsdcltrack', process.pid, 'an error: code 5'],
      [28, 'nfsdcltrack', process.pid, 'a warning'],
      [30, 'nfsdcltrack', process.pid, 'a debug line'],
      [30, 'nfsdcltrack', process.pid, 'a lazy debug line'],
    ],
  );
  t.match(got[0]!.msg, new RegExp(`^<27>... .. ..:..:.. nfsdcltrack\\[${process.pid}\\]: an error: code 5$`));
  if (isRoot) {
    // As root, logger --id also sets SCM_CREDENTIALS, so a syslog daemon
    // that trusts credentials (journald) still sees our pid, not logger's.
    t.same(
      got.map(d => d.credPid),
      [process.pid, process.pid, process.pid, process.pid],
      'socket credentials carry our pid',
    );
  } else {
    t.comment('not root: socket credentials carry logger\'s pid (expected, see logger(1) --id)');
  }
});

t.test('plain logger, direct: timing of one flush', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket } });
  log.error('timed');
  const start = process.hrtime.bigint();
  log.flush();
  t.comment(`flush of 1 message, spawnSync(${LOGGER_PATH}): ${ms(start).toFixed(2)} ms`);
  const got = await rx.done();
  t.equal(got.length, 1);
  t.equal(parse(got[0]!).text, 'timed');
});

t.test('debug only when enabled; thunks not called when disabled', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket } });
  t.equal(log.debugEnabled, false, 'off by default');
  let calls = 0;
  log.debug('hidden 1');
  log.debug(() => {
    calls++;
    return 'hidden 2';
  });
  t.equal(calls, 0, 'thunk not evaluated when debug is off');
  log.flush();
  t.equal(log.spawns, 0, 'only suppressed debug: nothing to send, no spawn');
  log.warn('first');
  log.debugEnabled = true; // switched on after creation, as after reading nfs.conf
  log.debug(() => {
    calls++;
    return 'shown';
  });
  log.debugEnabled = false;
  log.debug('hidden 3');
  log.error('last');
  log.flush();
  t.equal(calls, 1);
  t.equal(log.spawns, 1);
  const recs = (await rx.done()).map(parse);
  t.same(
    recs.map(r => [r.pri, r.text]),
    [
      [28, 'first'],
      [30, 'shown'],
      [27, 'last'],
    ],
  );
});

t.test('one message is one record: line breaks, control characters, length', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket } });
  const long = 'é'.repeat(3000) + 'END';
  log.error('line one\nline two\r\nline three\rfour');
  log.error('nul\0bell\x07tab\tend');
  log.warn(long);
  log.warn('a'.repeat(MAX_MESSAGE_BYTES));
  log.warn('<5>not a priority');
  log.warn('');
  log.flush();
  const got = await rx.done();
  t.equal(got.length, 6, 'six messages, six datagrams (nothing split)');
  const recs = got.map(parse);
  t.equal(recs[0]!.text, 'line one line two line three four');
  t.equal(recs[1]!.text, 'nul?bell?tab\tend');
  const trunc = recs[2]!.text;
  t.ok(trunc.endsWith('...'), 'truncation is marked');
  t.ok(Buffer.byteLength(trunc) <= MAX_MESSAGE_BYTES, `truncated to ${Buffer.byteLength(trunc)} bytes`);
  t.ok(Buffer.byteLength(trunc) > MAX_MESSAGE_BYTES - 8, 'but not much shorter');
  t.notOk(trunc.includes('\ufffd'), 'no UTF-8 sequence cut in half');
  t.equal(recs[3]!.text, 'a'.repeat(MAX_MESSAGE_BYTES), 'exactly MAX_MESSAGE_BYTES is kept whole');
  t.equal(recs[4]!.pri, 28);
  t.equal(recs[4]!.text, '<5>not a priority', 'only our own prefix is parsed');
  t.equal(recs[5]!.text, '');
});

t.test('buffer cap: excess counted and reported', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket } });
  for (let i = 0; i < MAX_BUFFERED + 44; i++) log.warn(`m${i}`);
  log.flush();
  t.equal(log.spawns, 1);
  const recs = (await rx.done()).map(parse);
  t.equal(recs.length, MAX_BUFFERED + 1);
  t.equal(recs[MAX_BUFFERED - 1]!.text, `m${MAX_BUFFERED - 1}`);
  t.same([recs[MAX_BUFFERED]!.pri, recs[MAX_BUFFERED]!.text], [28, '44 further log messages dropped']);
});

t.test('delivery failures: silent, bounded, never throw', async t => {
  t.test('socket path does not exist', async t => {
    const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'no', 'such', 'sock') } });
    log.error('lost');
    const start = process.hrtime.bigint();
    t.doesNotThrow(() => log.flush());
    const took = ms(start);
    t.ok(took < 500, `returned in ${took.toFixed(2)} ms`);
    t.equal(log.spawns, 0, 'no socket: logger not even spawned');
  });

  t.test('socket path under a regular file (stat fails with ENOTDIR)', async t => {
    const file = path.join(tmp, 'regular');
    fs.writeFileSync(file, '');
    const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: path.join(file, 'sock') } });
    log.error('lost');
    t.doesNotThrow(() => log.flush());
    t.equal(log.spawns, 0);
  });

  t.test('default socket is /dev/log', async t => {
    t.equal(DEFAULT_SYSLOG_SOCKET, '/dev/log');
    const devLog = fs.existsSync('/dev/log');
    // Where /dev/log exists, run /bin/true instead of logger: tests must not
    // write to the machine's real syslog.
    const log = createLogger({ env: {}, loggerPath: devLog ? '/bin/true' : undefined });
    log.error('default socket');
    t.doesNotThrow(() => log.flush());
    t.equal(log.spawns, devLog ? 1 : 0, devLog ? '/dev/log exists: spawned' : '/dev/log missing: not spawned');
  });

  t.test('logger program missing', { skip: !hasPython && 'no python3' }, async t => {
    const rx = await startReceiver();
    const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, loggerPath: path.join(tmp, 'no-logger') });
    log.error('lost');
    t.doesNotThrow(() => log.flush());
    t.equal(log.spawns, 1);
    t.same(await rx.done(), []);
  });

  t.test('syslog daemon not reading: logger blocks, timeout bounds it', { skip: !hasPython && 'no python3' }, async t => {
    const rx = await startReceiver('noread');
    const timeoutMs = 300;
    const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, timeoutMs });
    // net.unix.max_dgram_qlen is 10 by default: 40 datagrams fill the queue.
    for (let i = 0; i < 40; i++) log.error(`stuck ${i}`);
    const start = process.hrtime.bigint();
    t.doesNotThrow(() => log.flush());
    const took = ms(start);
    t.comment(`blocked logger killed after ${took.toFixed(0)} ms (timeout ${timeoutMs} ms)`);
    t.ok(took >= timeoutMs - 50, 'logger really blocked (the test exercises the timeout)');
    t.ok(took < timeoutMs + 2000, 'flush returned soon after the timeout');
    await rx.done();
  });

  t.test('default timeout is short', async t => {
    t.ok(LOGGER_TIMEOUT_MS > 0 && LOGGER_TIMEOUT_MS <= 5000, `${LOGGER_TIMEOUT_MS} ms`);
  });
});

t.test('foreground: "nfsdcltrack: message" on stderr, immediately', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const err = stderrFile();
  const log = createLogger({ foreground: true, debug: true, env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, stderrFd: err.fd });
  t.equal(log.foreground, true);
  log.error('an error');
  t.equal(err.read(), 'nfsdcltrack: an error\n', 'written before flush');
  log.warn('a warning');
  log.debug(() => 'a debug line');
  log.debugEnabled = false;
  log.debug('hidden');
  log.error('two\nlines');
  log.flush();
  t.equal(
    err.read(),
    'nfsdcltrack: an error\nnfsdcltrack: a warning\nnfsdcltrack: a debug line\nnfsdcltrack: two\nlines\n',
  );
  t.equal(log.spawns, 0, 'nothing for syslog');
  t.same(await rx.done(), [], 'no datagram');
});

t.test('switched to foreground before flush: buffered lines go to stderr', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  const err = stderrFile();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, stderrFd: err.fd });
  t.equal(log.foreground, false);
  log.warn('early 1');
  log.error('early 2');
  t.equal(err.read(), '', 'buffered for syslog');
  log.foreground = true; // -f parsed after the logger exists
  t.equal(err.read(), 'nfsdcltrack: early 1\nnfsdcltrack: early 2\n', 'moved to stderr, in order');
  log.warn('late');
  t.equal(err.read(), 'nfsdcltrack: early 1\nnfsdcltrack: early 2\nnfsdcltrack: late\n');
  log.foreground = true; // again: nothing pending, nothing repeated
  log.flush();
  t.equal(log.spawns, 0);
  // and back: later lines go to syslog again
  log.foreground = false;
  log.error('to syslog');
  log.flush();
  t.equal(log.spawns, 1);
  const recs = (await rx.done()).map(parse);
  t.same(
    recs.map(r => [r.pri, r.text]),
    [[27, 'to syslog']],
  );
  t.equal(err.read().split('\n').length, 4, 'stderr unchanged');
});

t.test('switched to foreground with dropped messages', async t => {
  const err = stderrFile();
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'absent') }, stderrFd: err.fd });
  for (let i = 0; i < MAX_BUFFERED + 3; i++) log.error(`e${i}`);
  log.foreground = true;
  const lines = err.read().split('\n');
  t.equal(lines.length, MAX_BUFFERED + 2);
  t.equal(lines[MAX_BUFFERED], 'nfsdcltrack: 3 further log messages dropped');
});

t.test('foreground write errors are swallowed', async t => {
  t.test('EBADF', async t => {
    const fd = 1000;
    t.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, `fd ${fd} is not open`);
    const log = createLogger({ foreground: true, stderrFd: fd });
    t.doesNotThrow(() => log.error('into the void'));
    t.doesNotThrow(() => log.flush());
  });
  t.test('EPIPE', async t => {
    const fifo = path.join(tmp, 'fifo');
    t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
    const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wr = fs.openSync(fifo, fs.constants.O_WRONLY);
    fs.closeSync(rd);
    t.teardown(() => fs.closeSync(wr));
    t.throws(() => fs.writeSync(wr, 'x'), { code: 'EPIPE' }, 'raw write fails with EPIPE');
    const log = createLogger({ foreground: true, stderrFd: wr });
    t.doesNotThrow(() => log.warn('nobody reads'));
  });
});

t.test('odd input never throws', async t => {
  const err = stderrFile();
  const log = createLogger({ foreground: true, debug: true, stderrFd: err.fd });
  log.debug(() => {
    throw new Error('boom');
  });
  log.error(42 as unknown as string);
  const evil = {
    toString(): string {
      throw new Error('no');
    },
  };
  log.warn(evil as unknown as string);
  log.debug(() => evil as unknown as string);
  t.equal(
    err.read(),
    'nfsdcltrack: debug message failed: Error: boom\nnfsdcltrack: 42\n' +
      'nfsdcltrack: (unprintable message)\nnfsdcltrack: (unprintable message)\n',
  );
});

t.test('createLogger() with no options: syslog mode, debug off, process.env', async t => {
  const log = createLogger();
  t.equal(log.foreground, false);
  t.equal(log.debugEnabled, false);
  log.debug('nothing');
  log.flush();
  t.equal(log.spawns, 0);
});

t.test('silentLogger drops everything', async t => {
  silentLogger.error('x');
  silentLogger.warn('x');
  let called = false;
  silentLogger.debug(() => {
    called = true;
    return 'x';
  });
  silentLogger.debugEnabled = true;
  silentLogger.foreground = true;
  silentLogger.debug(() => {
    called = true;
    return 'x';
  });
  silentLogger.flush();
  t.equal(called, false, 'thunks never evaluated');
  t.equal(silentLogger.debugEnabled, false);
  t.equal(silentLogger.foreground, false);
  t.equal(silentLogger.spawns, 0);
});

t.test('sanitizeForSyslog properties', async t => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 3000 }), s => {
      const out = sanitizeForSyslog(s);
      if (/[\x00-\x08\x0a-\x1f\x7f\u2028\u2029\x85]/.test(out)) return false;
      if (Buffer.byteLength(out) > MAX_MESSAGE_BYTES) return false;
      const clean = !/[\x00-\x08\x0a-\x1f\x7f\u2028\u2029\x85]/.test(s);
      if (clean && Buffer.byteLength(s) <= MAX_MESSAGE_BYTES && out !== s) return false;
      return true;
    }),
  );
  t.equal(
    loggerInput([
      { severity: LOG_ERR, msg: 'e' },
      { severity: LOG_WARNING, msg: 'w\nx' },
      { severity: LOG_INFO, msg: 'i' },
    ]),
    '<27>e\n<28>w x\n<30>i\n',
  );
});

t.test('children run by bare node, like the kernel runs us', { skip: !hasPython && 'no python3' }, async t => {
  const logJs = transpiledLog();

  t.test('foreground output on the real fd 2', async t => {
    const script =
      `const { createLogger } = require(${JSON.stringify(logJs)});` +
      `const log = createLogger({});` +
      `log.warn('buffered before -f'); log.foreground = true;` +
      `log.error('an error'); log.debug('hidden'); log.debugEnabled = true; log.debug(() => 'dbg ' + 1);` +
      `log.flush();`;
    const r = bareNode(['-e', script]);
    t.equal(r.status, 0);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.equal(r.stderr, 'nfsdcltrack: buffered before -f\nnfsdcltrack: an error\nnfsdcltrack: dbg 1\n');
  });

  t.test('a process that logs nothing never loads child_process', async t => {
    const rx = await startReceiver();
    const probe = `process.moduleLoadList.includes('NativeModule child_process')`;
    const script =
      `const { createLogger } = require(${JSON.stringify(logJs)});` +
      `const out = [${probe}];` +
      `const log = createLogger({ env: process.env });` +
      `log.debug(() => { throw new Error('evaluated'); }); log.flush(); out.push(${probe});` +
      `log.error('now something'); log.flush(); out.push(${probe});` +
      `console.log(JSON.stringify(out));`;
    const r = bareNode(['-e', script], { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket });
    t.equal(r.status, 0, r.stderr);
    t.same(JSON.parse(r.stdout), [false, false, true], 'loaded only once there was something to send');
    const recs = (await rx.done()).map(parse);
    t.same(
      recs.map(x => [x.pri, x.pid, x.text]),
      [[27, r.pid, 'now something']],
      'tag carries the child pid',
    );
  });

  t.test('without capabilities (as the installed launchers run): the record still arrives, the pid in its tag', { skip: (process.getuid?.() !== 0 || !fs.existsSync('/usr/bin/setpriv')) && 'needs root and setpriv' }, async t => {
    const rx = await startReceiver();
    const script =
      `const { createLogger } = require(${JSON.stringify(logJs)});` +
      `const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: process.argv[1] } });` +
      `log.error('with no capabilities'); log.flush();`;
    const r = spawnSync('/usr/bin/setpriv', ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--', process.execPath, '-e', script, rx.socket], { timeout: 10000 });
    t.equal(r.status, 0, 'exit 0');
    const recs = await rx.done();
    t.same(recs.map(parse).map(x => [x.pri, x.tag, x.text]), [[27, 'nfsdcltrack', 'with no capabilities']], 'delivered (logger --id would fail with EPERM)');
    t.match(recs[0]?.msg ?? '', /nfsdcltrack\[\d+\]: with no capabilities$/, 'the tag carries a pid');
  });

  t.test('fds 0-2 closed, empty environment (kernel upcall conditions)', async t => {
    const rx = await startReceiver();
    const script =
      `const { createLogger } = require(${JSON.stringify(logJs)});` +
      `const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: process.argv[1] } });` +
      `log.error('from a detached upcall'); log.flush();` +
      `const fg = createLogger({ foreground: true }); fg.error('to a closed stderr'); fg.flush();`;
    // python closes fds 0-2 and execs node with an empty environment (no PATH).
    const exec = `import os, sys\nos.closerange(0, 3)\nos.execve(sys.argv[1], sys.argv[1:], {})`;
    const r = spawnSync('python3', ['-c', exec, process.execPath, '-e', script, rx.socket], { timeout: 10000 });
    t.equal(r.status, 0, 'exit 0');
    const recs = (await rx.done()).map(parse);
    t.same(
      recs.map(x => [x.pri, x.tag, x.pid, x.text]),
      [[27, 'nfsdcltrack', r.pid, 'from a detached upcall']],
    );
  });
});

t.test('background (the daemon): flush never waits for a slow logger, and no line is lost to it', { skip: !hasPython && 'no python3' }, async t => {
  const rx = await startReceiver();
  // logger as it starts under a heavy load: 1.5 s late, more than the blocking bound (LOGGER_TIMEOUT_MS)
  const slow = path.join(tmp, 'slow-logger');
  fs.writeFileSync(slow, `#!/bin/sh\nsleep 1.5\nexec ${LOGGER_PATH} "$@"\n`, { mode: 0o755 });
  const log = createLogger({ env: { NFSDCLTRACK_SYSLOG_SOCKET: rx.socket }, loggerPath: slow, background: true });
  log.error('refusing to serve the store');
  const start = process.hrtime.bigint();
  log.flush();
  t.ok(ms(start) < 500, `flush returned at once (${ms(start).toFixed(0)} ms) with logger still starting`);
  log.warn('logged while logger runs');
  log.flush();
  t.equal(log.spawns, 1, 'one logger at a time: the second line waits for the first to exit');
  for (let i = 0; i < 100 && (log.spawns ?? 0) < 2; i++) await new Promise(r => setTimeout(r, 50));
  t.equal(log.spawns, 2, 'and goes with the next, once it has');
  log.debug('not enabled');
  log.error('at exit');
  const s2 = process.hrtime.bigint();
  log.flushNow();
  t.ok(ms(s2) >= 1400, `flushNow waits for its logger (${ms(s2).toFixed(0)} ms)`);
  await new Promise(r => setTimeout(r, 2000));
  const texts = (await rx.done()).map(d => parse(d).text).sort();
  t.same(texts, ['at exit', 'logged while logger runs', 'refusing to serve the store'], 'every line delivered');
});
