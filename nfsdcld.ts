// nfsdcld: the NFSv4 client-tracking daemon the kernel talks to through the
// cld pipe in rpc_pipefs, on the same journaled store as the upcall. A
// drop-in for nfs-utils' nfsdcld: same options, same nfs.conf settings, same
// answers (lib/cld/server.ts).
import * as fs from 'fs';
import * as path from 'path';
import { V40Carry } from './lib/cld/carry';
import { NFSD_DIR } from './lib/cld/nfsd-clients';
import { CldPipe } from './lib/cld/pipe';
import { CldServer } from './lib/cld/server';
import { loadCldConfig } from './lib/config';
import { getoptLong, type OptionSpec } from './lib/getopt';
import { firstLine, guardFor, mustExist, NOTE_INTERVAL_MS, noteWritten, startServing, stateDirOf } from './lib/ha';
import { createLogger, type Logger } from './lib/log';
import { readStoreId } from './lib/store/identity';
import { ensureStorageDir, Store } from './lib/store/store';

export const DEFAULT_STORAGEDIR = '/var/lib/nfs/nfsdcltrack';
export const DEFAULT_PIPEFS = '/var/lib/nfs/rpc_pipefs';
const PROG = 'nfsdcld';
/** Set in the detached child, which reports on fd 3 that it is serving. */
const DETACHED_ENV = 'NFSDCLD_TS_DETACHED';

const OPTIONS: readonly OptionSpec[] = [
  { name: 'help', short: 'h', hasArg: false },
  { name: 'debug', short: 'd', hasArg: false },
  { name: 'foreground', short: 'F', hasArg: false },
  { name: 'pipefsdir', short: 'p', hasArg: true },
  { name: 'storagedir', short: 's', hasArg: true },
];

const USAGE = `Usage: ${PROG} [ -hFd ] [ -p pipefsdir ] [ -s storagedir ]\n`;

interface Args {
  help: boolean;
  debug: boolean;
  foreground: boolean;
  pipefsDir?: string;
  storagedir?: string;
  operands: string[];
  error?: string;
}

function parseArgs(argv: readonly string[]): Args {
  const out: Args = { help: false, debug: false, foreground: false, operands: [] };
  out.error = getoptLong(
    argv,
    OPTIONS,
    PROG,
    (c, v) => {
      if (c === 'h') out.help = true;
      else if (c === 'd') out.debug = true;
      else if (c === 'F') out.foreground = true;
      else if (c === 'p') out.pipefsDir = v;
      else out.storagedir = v;
    },
    out.operands,
  );
  return out;
}

const say = (fd: number, text: string): void => {
  try {
    fs.writeSync(fd, text);
  } catch {
    /* nobody to tell */
  }
};

/**
 * Without -F, nfsdcld detaches (daemon(3)). A runtime cannot fork, so the
 * same program starts again in a new session with no terminal, and this one
 * exits once it is serving (or with its failure), as a forking daemon does
 * for systemd's Type=forking.
 */
function detach(): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require('child_process') as typeof import('child_process');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
    detached: true,
    cwd: '/',
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [DETACHED_ENV]: '1' },
  });
  return new Promise((resolve) => {
    let ready = false;
    child.stdio[3]!.on('data', () => {
      ready = true;
      child.unref();
      resolve(0);
    });
    child.on('exit', (code) => {
      if (!ready) resolve(code || 1);
    });
  });
}

async function main(argv: string[], log: Logger): Promise<number> {
  const args = parseArgs(argv);
  if (args.error || args.help || args.operands.length > 0) {
    if (args.error) say(2, args.error + '\n');
    say(2, USAGE);
    // nfsdcld prints its usage and exits 0 on -h; a bad command line is an error.
    return args.help && !args.error ? 0 : 1;
  }
  const detached = process.env[DETACHED_ENV] === '1';
  if (!args.foreground && !detached) return detach();
  log.foreground = args.foreground;
  const conf = loadCldConfig(process.env, (m) => log.warn(m));
  log.debugEnabled = args.debug || conf.debug;
  const storagedir = path.resolve(args.storagedir ?? conf.storagedir ?? DEFAULT_STORAGEDIR);
  const pipePath = path.resolve(args.pipefsDir ?? conf.pipefsDir ?? DEFAULT_PIPEFS, 'nfsd', 'cld');
  // No working directory on the storage (or any other) filesystem: a failover must be able to unmount it.
  process.chdir('/');
  const ha = { storeId: conf.storeId, storageMountpoint: conf.storageMountpoint, stateDir: conf.stateDir };
  try {
    // With a pin or a mount point, a missing dir is where the shared disk should be: not made (refused below).
    if (!mustExist(ha) || fs.existsSync(storagedir)) ensureStorageDir(storagedir);
  } catch (e) {
    log.error(`Failed to open the client store: ${(e as Error).message}`);
    return 1;
  }
  // NFSDCLTRACK_COMPACT_BYTES: the upcall's test hook for the compaction threshold, honoured here too.
  const compact = Number(process.env.NFSDCLTRACK_COMPACT_BYTES);
  // A refused store (the wrong one, none, one behind this node's note) is
  // still served, with failures: the daemon must keep answering, or nfsd
  // would fall back to another tracker (docs/ha.md).
  let refused: string | null = null;
  const mountGuard = guardFor(storagedir, ha);
  const store = new Store({
    dir: storagedir,
    log,
    deferCompaction: true,
    compactBytes: compact > 0 ? compact : undefined,
    storeId: ha.storeId,
    guard: () => refused ?? mountGuard?.() ?? null,
  });
  refused = await startServing(store, { log, env: process.env, ha });
  if (refused === null) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const admin = require('./lib/admin') as typeof import('./lib/admin');
      await admin.importAtDaemonStart(storagedir, process.env, log);
    } catch (e) {
      // The clients it would have brought are refused: the safe way to fail.
      log.error(`first-start import failed: ${(e as Error).message}`);
    }
  }
  // How far this node served the store: noted now and then, never per write (docs/ha.md).
  const stateDir = stateDirOf(process.env, ha);
  const noteTimer = setInterval(() => noteWritten(store, stateDir, log), NOTE_INTERVAL_MS);
  noteTimer.unref();
  let pipe: CldPipe | null = null;
  let server: CldServer | null = null;
  const storeId = refused === null ? readStoreId(storagedir).id : null;
  const bootId = firstLine('/proc/sys/kernel/random/boot_id') ?? '-';
  const carry = new V40Carry({
    log,
    // NFSDCLTRACK_NFSD_DIR: a test hook standing in for /proc/fs/nfsd.
    nfsdDir: process.env.NFSDCLTRACK_NFSD_DIR || NFSD_DIR,
    file: storeId === null ? null : path.join(stateDir, `carried.${storeId}`),
    instance: () => {
      const p = pipe?.identity();
      return p ? `${bootId}:${p}` : null;
    },
    forget: (id) => server!.forget(id),
  });
  server = new CldServer({
    store,
    log,
    send: (reply) => pipe!.send(reply),
    readWaiting: () => pipe!.readWaiting(),
    carry,
  });
  pipe = new CldPipe({ path: pipePath, log, onMessage: (msg) => server!.handle(msg) });
  pipe.start();
  // Restarted under the nfsd that carried some v4.0 clients: watch them again.
  carry.resume();
  log.debug(() => `serving ${pipePath} from ${storagedir}`);
  if (detached) {
    say(3, 'ready\n');
    fs.closeSync(3);
  }
  log.flush();
  // Syslog lines are sent in batches, not one process per line.
  const flusher = setInterval(() => log.flush(), 1000);
  flusher.unref();
  return new Promise((resolve) => {
    const stop = (sig: string) => {
      log.debug(() => `${sig}: answering what was read, then exiting`);
      pipe!.stopReading();
      carry.close();
      void server!.idle().then(() => {
        pipe!.close();
        noteWritten(store, stateDir, log);
        resolve(0);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

// background: a resident process never waits for syslog in its event loop (lib/log.ts).
const log = createLogger({ env: process.env, ident: PROG, foreground: true, background: true });
// Until -F is seen, as nfsdcld: messages go to stderr, then to syslog when detached.
log.foreground = process.env[DETACHED_ENV] !== '1';
const finish = (status: number): never => {
  log.flushNow();
  process.exit(status);
};
const crash = (e: unknown): never => {
  log.error(`internal error: ${(e as Error)?.message ?? String(e)}`);
  return finish(1);
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);
main(process.argv.slice(2), log).then(finish, crash);
