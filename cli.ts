// nfsdcltrack: the NFSv4 client-tracking upcall. The kernel runs one process
// per event and reads only its exit status (SPEC §6).
import * as fs from 'fs';
import { KERNEL_COMMANDS, NEEDS_ARG, runKernelCommand, type KernelCommand } from './lib/commands';
import { loadTrackConfig } from './lib/config';
import { EINVAL, ENOSYS, statusFor } from './lib/errno';
import { firstOperand, parseKernelArgs, USAGE } from './lib/getopt';
import { createLogger, type Logger } from './lib/log';

export const DEFAULT_STORAGEDIR = '/var/lib/nfs/nfsdcltrack';
const ADMIN_COMMANDS = new Set(['list', 'status', 'verify', 'compact', 'import', 'export']);

function writeFd(fd: number, text: string): void {
  try {
    fs.writeSync(fd, text);
  } catch {
    // Under the kernel, fds 0-2 are closed; there is nobody to tell.
  }
}

async function main(argv: string[], log: Logger): Promise<number> {
  const env = process.env;
  const name = firstOperand(argv);
  if (name !== undefined && ADMIN_COMMANDS.has(name)) {
    // Rare, and heavy: loaded only when asked for.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const admin = require('./lib/admin') as typeof import('./lib/admin');
    return admin.runAdmin(argv, { env, log, defaultStoragedir: DEFAULT_STORAGEDIR });
  }
  const args = parseKernelArgs(argv);
  if (args.error || args.help) {
    if (args.error) writeFd(2, args.error + '\n');
    writeFd(1, USAGE);
    return 1;
  }
  log.foreground = args.foreground;
  const conf = loadTrackConfig(env, (m) => log.warn(m));
  log.debugEnabled = args.debug || conf.debug;
  const storagedir = args.storagedir ?? conf.storagedir ?? DEFAULT_STORAGEDIR;
  const [cmd, arg] = args.operands;
  if (cmd === undefined) {
    log.error('Missing command name');
    return statusFor(EINVAL);
  }
  if (!(KERNEL_COMMANDS as readonly string[]).includes(cmd)) {
    log.error(`find_cmd: '${cmd}' doesn't match any known command`);
    return statusFor(ENOSYS);
  }
  const command = cmd as KernelCommand;
  if (NEEDS_ARG[command] && arg === undefined) {
    log.error(`Command ${cmd} requires an argument`);
    return statusFor(EINVAL);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const importLegacy = (dir: string, l: Logger) => (require('./lib/admin') as typeof import('./lib/admin')).importIfLegacy(dir, l);
  const ha = { storeId: conf.storeId, storageMountpoint: conf.storageMountpoint, stateDir: conf.stateDir };
  return runKernelCommand(command, arg, { storagedir, env, log, importLegacy, ha });
}

/** Status for a failure nobody foresaw: the command's own "could not" status. */
function unexpectedStatus(argv: readonly string[]): number {
  const cmd = firstOperand(argv);
  return cmd === 'check' ? 255 : cmd === 'init' ? 243 : cmd && ADMIN_COMMANDS.has(cmd) ? 2 : 135;
}

const log = createLogger({ env: process.env });
const argv = process.argv.slice(2);
const finish = (status: number): never => {
  log.flush();
  process.exit(status);
};
const crash = (e: unknown): never => {
  log.error(`internal error: ${(e as Error)?.message ?? String(e)}`);
  return finish(unexpectedStatus(argv));
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);
main(argv, log).then(finish, crash);
