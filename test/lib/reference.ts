// The reference programs from Debian 12's nfs-kernel-server (nfs-utils
// 2.6.2): fetched with `apt-get download` + `dpkg -x` once per machine into a
// cache dir (no service is started), shared by the differential tests.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';

export const REF_CACHE = process.env.NFSDCLTRACK_REF_DIR ?? path.join(os.tmpdir(), 'nfsdcltrack-ref-nfs-utils');

/** The unpacked package's root; the reason when it cannot be had. */
function referencePackage(): { root: string } | { why: string } {
  if (fs.existsSync(REF_CACHE)) return { root: REF_CACHE };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nfsdcltrack-ref-fetch-'));
  try {
    const dl = spawnSync('apt-get', ['download', 'nfs-kernel-server'], { cwd: work, encoding: 'utf8', timeout: 120_000 });
    const deb = fs.readdirSync(work).find((f) => f.startsWith('nfs-kernel-server') && f.endsWith('.deb'));
    if (dl.error || dl.status !== 0 || !deb) return { why: `apt-get download nfs-kernel-server failed: ${dl.error?.message ?? dl.stderr.trim()}` };
    const unpacked = path.join(work, 'root');
    const x = spawnSync('dpkg', ['-x', path.join(work, deb), unpacked], { encoding: 'utf8' });
    if (x.error || x.status !== 0) return { why: `dpkg -x failed: ${x.error?.message ?? x.stderr.trim()}` };
    try {
      fs.renameSync(unpacked, REF_CACHE);
    } catch {
      /* another run got there first */
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { root: REF_CACHE };
}

/** A program of the package by its path inside it (e.g. 'usr/sbin/nfsdcld'). */
export function referenceProgram(rel: string): { bin: string } | { why: string } {
  const pkg = referencePackage();
  if ('why' in pkg) return pkg;
  const bin = path.join(pkg.root, rel);
  return fs.existsSync(bin) ? { bin } : { why: `no ${bin} in the package` };
}

/** A skip nobody can miss: a banner on stderr as well as the TAP skip. */
export function loudSkip(t: { comment(...a: unknown[]): void; skip(name: string, fn: () => void): unknown }, msg: string): void {
  process.stderr.write(`\n${'!'.repeat(72)}\n!!! SKIP ${msg}\n${'!'.repeat(72)}\n\n`);
  t.comment(`!!! SKIP ${msg}`);
  t.skip(`SKIP ${msg}`, () => {});
}
