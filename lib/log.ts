/*
 * Logging for nfsdcltrack (SPEC.md §2, "Logging").
 *
 * Default: syslog, ident "nfsdcltrack", our pid, facility daemon; error() at
 * LOG_ERR, warn() at LOG_WARNING, debug() at LOG_INFO. With -f (foreground):
 * stderr, one line "nfsdcltrack: message" per message, written immediately.
 * debug() lines are dropped unless debugEnabled.
 *
 * WHY /usr/bin/logger AND NOT A NATIVE ADDON
 * Node cannot open an AF_UNIX SOCK_DGRAM socket, which is what /dev/log is.
 * The alternatives are native addons (unix-dgram, modern-syslog, ...). We do
 * not use them because:
 *  - they need a compiler and node-gyp at install time (or prebuilt binaries
 *    for exactly this ABI), which a storage/NFS server often lacks;
 *  - a Node-API addon may not load under Bun, which the project may use as a
 *    faster runtime, while spawning a program works everywhere;
 *  - an addon is loaded at start-up by every process, even the majority that
 *    log nothing; logger costs nothing unless something is actually logged
 *    (child_process is required lazily, in flush(), only when there is
 *    something to send);
 *  - without /dev/log (containers, this build machine) an addon's connect
 *    fails and must be handled; here we simply stat the socket and skip.
 * Cost measured on the development machine (Node 20.20, util-linux 2.38.1,
 * 2 vCPUs, bare node, no tap): one spawnSync of /usr/bin/logger delivering
 * its messages takes ~2 ms (median 1.97-2.18 ms, p90 2.4-4.6 ms over 50
 * runs); the first flush() of a process, which also pays require(
 * 'child_process') (~1.3-3.8 ms, 39 internal modules) and libuv's first-spawn
 * set-up, takes 6-8 ms. It is paid at most once per process that logs (the
 * messages are buffered and all sent by one logger at flush()), and not at
 * all by a process that logs nothing.
 *
 * The logger invocation (flags checked against util-linux 2.38.1):
 *   /usr/bin/logger --id=<our pid> -t nfsdcltrack --prio-prefix -u <socket>
 * stdin: one "<PRI>message" line per message, PRI = LOG_DAEMON(3)*8 + severity.
 *  --id=<pid>     puts OUR pid (not logger's) in the "nfsdcltrack[pid]:" tag;
 *                 as root logger also sets SCM_CREDENTIALS to that pid, so
 *                 journald/rsyslog do not override it with logger's pid.
 *  --prio-prefix  per-line priority, so one logger serves all severities.
 *  -u <socket>    /dev/log (never falls back to a network server).
 * logger uses the local format "<PRI>Mmm dd hh:mm:ss tag[pid]: msg" on a unix
 * socket, the same as glibc syslog(3). It splits a line longer than its
 * default --size (1024 bytes) into several records, so we cap messages at
 * MAX_MESSAGE_BYTES; line breaks are replaced, so a message is one record.
 * The absolute path is required: the kernel's upcall has no PATH. busybox'
 * logger lacks these options; there delivery fails silently.
 *
 * Delivery failures are silent: under the kernel nobody can read our stderr,
 * and a logging problem must never change the exit status. Every wait is
 * bounded: a syslog daemon that does not read makes logger block in send(),
 * so spawnSync has a timeout (SIGKILL).
 */
import { readFileSync, writeSync, statSync } from 'fs';

/**
 * Whether logger may claim our pid (--id): the kernel lets a process send
 * another's pid in SCM_CREDENTIALS only with CAP_SYS_ADMIN, and the
 * installed launchers drop every capability; without it logger's send fails
 * (EPERM) and the message is lost, so the pid then goes into the tag.
 */
function mayClaimPid(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

export interface Logger {
  error(msg: string): void; // LOG_ERR
  warn(msg: string): void; // LOG_WARNING
  debug(msg: string | (() => string)): void; // LOG_INFO, only when debugEnabled
  debugEnabled: boolean; // may be switched on after creation
  foreground: boolean; // may be switched after creation (-f)
  flush(): void; // deliver buffered syslog lines; idempotent (waits for logger unless `background`)
  flushNow(): void; // the same, waiting for logger (a background logger's process exiting)
  /** Number of logger processes spawned by this Logger (diagnostics/tests). */
  readonly spawns?: number;
}

export interface LoggerOptions {
  /** The syslog tag and stderr prefix. Default IDENT. */
  ident?: string;
  foreground?: boolean;
  debug?: boolean;
  /** Environment; only NFSDCLTRACK_SYSLOG_SOCKET (a test hook) is read. Default process.env. */
  env?: Record<string, string | undefined>;
  /** Test hook: the logger program. Default /usr/bin/logger. */
  loggerPath?: string;
  /** Test hook: bound on the logger run, in ms. Default LOGGER_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Test hook: the fd foreground lines are written to. Default 2. */
  stderrFd?: number;
  /**
   * A resident process (the daemon): flush() starts logger and returns, one
   * logger at a time, each given BACKGROUND_TIMEOUT_MS; lines logged
   * meanwhile go with the next. Under a heavy load logger can take over a
   * second to start, and the 1 s bound of a blocking flush lost the
   * daemon's first lines (its refusal of a store: kernel e2e H2); waiting
   * longer in the event loop would hold up the kernel's upcalls. flushNow()
   * at exit still blocks, for up to EXIT_TIMEOUT_MS.
   */
  background?: boolean;
}

export const IDENT = 'nfsdcltrack';
export const LOGGER_PATH = '/usr/bin/logger';
export const DEFAULT_SYSLOG_SOCKET = '/dev/log';
/** The kernel waits for us without a time-out: never wait long for syslog. */
export const LOGGER_TIMEOUT_MS = 1000;
/** A background logger's bound: long, since nothing waits for it. */
export const BACKGROUND_TIMEOUT_MS = 30_000;
/** A background Logger's flushNow() at exit: the process is ending, systemd waits for it. */
export const EXIT_TIMEOUT_MS = 5000;
/** logger's default --size is 1024 bytes; a longer line becomes two records. */
export const MAX_MESSAGE_BYTES = 1024;
/** Messages kept for one flush; the excess is counted and reported. */
export const MAX_BUFFERED = 256;

const LOG_DAEMON = 3 << 3;
export const LOG_ERR = 3;
export const LOG_WARNING = 4;
export const LOG_INFO = 6;

const TRUNCATED = '...';

interface Pending {
  severity: number;
  msg: string;
}

/** Any value as a string, never throwing. */
function str(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return String(v);
  } catch {
    return '(unprintable message)';
  }
}

/**
 * One syslog record's text: line breaks become a space (one message is one
 * record), other control characters (NUL would end logger's line) become
 * '?', and the UTF-8 length is capped at MAX_MESSAGE_BYTES on a character
 * boundary.
 */
export function sanitizeForSyslog(msg: string): string {
  let s = msg.replace(/\r\n|[\r\n\u2028\u2029\x85]/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?');
  if (Buffer.byteLength(s) > MAX_MESSAGE_BYTES) {
    const buf = Buffer.from(s);
    let n = MAX_MESSAGE_BYTES - TRUNCATED.length;
    while (n > 0 && (buf[n]! & 0xc0) === 0x80) n--; // don't cut a UTF-8 sequence
    s = buf.subarray(0, n).toString() + TRUNCATED;
  }
  return s;
}

/** The bytes given to logger's stdin for these messages. */
export function loggerInput(msgs: readonly Pending[]): string {
  let out = '';
  for (const m of msgs) out += `<${LOG_DAEMON | m.severity}>${sanitizeForSyslog(m.msg)}\n`;
  return out;
}

/** Write all of `text` to fd, synchronously; errors (EBADF, EPIPE, ...) are dropped. */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  let tries = 0;
  try {
    while (off < buf.length && tries++ < 1000) off += writeSync(fd, buf, off, buf.length - off);
  } catch {
    // fd 2 may be closed (EBADF) or a pipe nobody reads any more (EPIPE).
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const loggerPath = opts.loggerPath ?? LOGGER_PATH;
  // A resident process's blocking flush is its last, at exit: it may wait longer than an upcall's.
  const timeoutMs = opts.timeoutMs ?? (opts.background ? EXIT_TIMEOUT_MS : LOGGER_TIMEOUT_MS);
  const stderrFd = opts.stderrFd ?? 2;
  const ident = opts.ident ?? IDENT;
  let foreground = !!opts.foreground;
  let pending: Pending[] = [];
  let dropped = 0;
  let spawns = 0;

  const toStderr = (msg: string): void => writeAll(stderrFd, `${ident}: ${msg}\n`);

  const emit = (severity: number, msg: string): void => {
    if (foreground) {
      toStderr(msg);
    } else if (pending.length < MAX_BUFFERED) {
      pending.push({ severity, msg });
    } else {
      dropped++;
    }
  };

  const take = (): Pending[] => {
    const msgs = pending;
    if (dropped > 0) msgs.push({ severity: LOG_WARNING, msg: `${dropped} further log messages dropped` });
    pending = [];
    dropped = 0;
    return msgs;
  };

  /** A background logger still running: the next lines wait for it. */
  let running = false;

  const send = (msgs: Pending[], wait: boolean): void => {
    const socket = env.NFSDCLTRACK_SYSLOG_SOCKET || DEFAULT_SYSLOG_SOCKET;
    try {
      // No syslog socket (container, build host): nobody to tell, skip the spawn.
      if (!statSync(socket, { throwIfNoEntry: false })) return;
      // Required here, not at the top: a process that logs nothing pays nothing.
      const cp = require('child_process') as typeof import('child_process');
      spawns++;
      const tag = mayClaimPid() ? [`--id=${process.pid}`, '-t', ident] : ['-t', `${ident}[${process.pid}]`];
      const args = [...tag, '--prio-prefix', '-u', socket];
      if (wait) {
        // Failures (ENOENT for a missing logger, ETIMEDOUT, a non-zero exit)
        // are reported in the result, which we deliberately ignore.
        cp.spawnSync(loggerPath, args, { input: loggerInput(msgs), stdio: ['pipe', 'ignore', 'ignore'], timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true });
        return;
      }
      const child = cp.spawn(loggerPath, args, { stdio: ['pipe', 'ignore', 'ignore'], windowsHide: true });
      running = true;
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? BACKGROUND_TIMEOUT_MS);
      timer.unref();
      child.on('error', () => {});
      child.stdin!.on('error', () => {});
      child.on('close', () => {
        clearTimeout(timer);
        running = false;
        logger.flush();
      });
      child.stdin!.end(loggerInput(msgs));
    } catch {
      // Logging never throws.
      running = false;
    }
  };

  const logger: Logger = {
    error(msg: string): void {
      emit(LOG_ERR, str(msg));
    },
    warn(msg: string): void {
      emit(LOG_WARNING, str(msg));
    },
    debug(msg: string | (() => string)): void {
      if (!logger.debugEnabled) return;
      let text: string;
      try {
        text = str(typeof msg === 'function' ? msg() : msg);
      } catch (e) {
        text = `debug message failed: ${str(e)}`;
      }
      emit(LOG_INFO, text);
    },
    debugEnabled: !!opts.debug,
    get foreground(): boolean {
      return foreground;
    },
    set foreground(v: boolean) {
      foreground = !!v;
      // Lines buffered for syslog before -f was parsed go to stderr, in order.
      if (foreground && (pending.length > 0 || dropped > 0)) for (const m of take()) toStderr(m.msg);
    },
    flush(): void {
      if ((pending.length === 0 && dropped === 0) || running) return;
      send(take(), !opts.background);
    },
    flushNow(): void {
      if (pending.length === 0 && dropped === 0) return;
      send(take(), true);
    },
    get spawns(): number {
      return spawns;
    },
  };
  return logger;
}

const noop = (): void => {};

/** For library use: drops everything, never spawns anything. */
export const silentLogger: Logger = {
  error: noop,
  warn: noop,
  debug: noop,
  get debugEnabled(): boolean {
    return false;
  },
  set debugEnabled(_v: boolean) {},
  get foreground(): boolean {
    return false;
  },
  set foreground(_v: boolean) {},
  flush: noop,
  flushNow: noop,
  spawns: 0,
};
