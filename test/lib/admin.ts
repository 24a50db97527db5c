// What the admin tests share: a scratch dir with an empty nfs.conf and no
// syslog, and a runner for `dist/cli.js` without tap's coverage hook in
// NODE_OPTIONS (it costs a Node start-up several times over).
import t from 'tap';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { ensureBuilt, ROOT } from './built';

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export const CLI = path.join(ROOT, 'dist', 'cli.js');

export function adminSandbox(prefix: string, cleanup: () => void = () => {}) {
  ensureBuilt();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => {
    cleanup();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const conf = path.join(tmp, 'nfs.conf');
  fs.writeFileSync(conf, '');
  let n = 0;
  const baseEnv = { NFSDCLTRACK_CONF_FILE: conf, NFSDCLTRACK_SYSLOG_SOCKET: path.join(tmp, 'no-syslog'), PATH: process.env.PATH ?? '/usr/bin:/bin' };
  return {
    tmp,
    conf,
    baseEnv,
    fresh: (name = 'case'): string => path.join(tmp, `${name}-${++n}`),
    run(args: string[], env: Record<string, string> = {}, runtime = process.execPath, timeout = 120_000): Run {
      const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', runtime, CLI, ...args], { env: { ...baseEnv, ...env }, encoding: 'utf8', timeout });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
  };
}
