// The NFSv4.0 clients that reclaimed in this grace period, as nfsd itself
// lists them in its filesystem (/proc/fs/nfsd/clients/<n>/{info,states}).
//
// Why: under cld v1/v2 the kernel checks a v4.0 reclaim in memory against
// the GraceStart list and sends no upcall, and a reclaim OPEN needs no
// OPEN_CONFIRM, so a v4.0 client that only reclaims gets no Create. nfsdcld
// then forgets it with the recovery epoch at GraceDone, and the client's
// next reclaim, after the next restart, is refused. The server still knows:
// GraceDone is sent before nfsd leaves grace (nfsd4_end_grace calls
// nfsd4_record_grace_done before locks_end_grace), and in grace nfsd grants
// only reclaims, so any open, lock or delegation a v4.0 client holds then is
// one it reclaimed, which nfsd allowed only because we listed it.
import * as fs from 'fs';
import * as path from 'path';

export const NFSD_DIR = '/proc/fs/nfsd';

export interface ClientInfo {
  /** The client's id string (cl_name), as the cld upcalls carry it. */
  name: Buffer;
  minorVersion: number;
  /** confirmed, unconfirmed, courtesy, expirable. */
  status: string;
}

/**
 * Decodes one `info` file (nfs4state.c client_info_show). The name is
 * printed by seq_quote_mem: between double quotes, every byte that is not
 * printable ASCII, and `"` and `\`, as \xHH. Null when the file does not
 * say all three things we need.
 */
export function parseClientInfo(text: string): ClientInfo | null {
  const name = /^name: "((?:[^"\\\n]|\\x[0-9a-fA-F]{2})*)"$/m.exec(text);
  const minor = /^minor version: (\d+)$/m.exec(text);
  const status = /^status: (\w+)$/m.exec(text);
  if (!name || !minor || !status) return null;
  const bytes: number[] = [];
  const s = name[1];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      bytes.push(s.charCodeAt(i));
    }
  }
  return { name: Buffer.from(bytes), minorVersion: Number(minor[1]), status: status[1] };
}

/** Whether a `states` file lists any state (one "- 0x...: { type: ... }" entry each). */
export const holdsState = (states: string): boolean => /^- /m.test(states);

/**
 * The ids (hex of the name, as the store keys records) of the confirmed
 * v4.0 clients that hold state now, or why nfsd's filesystem cannot be
 * read (not mounted here, an old kernel without clients/): the caller then
 * does what nfsdcld does.
 */
export function heldV40Clients(nfsdDir: string = NFSD_DIR): { ids: Set<string> } | { error: string } {
  const dir = path.join(nfsdDir, 'clients');
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    return { error: `cannot list ${dir}: ${(e as Error).message}` };
  }
  const ids = new Set<string>();
  for (const n of entries) {
    // A client may go away between the listing and the reads: it is then not held.
    let info: ClientInfo | null;
    try {
      info = parseClientInfo(fs.readFileSync(path.join(dir, n, 'info'), 'latin1'));
    } catch {
      continue;
    }
    if (!info || info.minorVersion !== 0 || info.status !== 'confirmed' || info.name.length === 0) continue;
    let states: string;
    try {
      states = fs.readFileSync(path.join(dir, n, 'states'), 'latin1');
    } catch {
      continue;
    }
    if (holdsState(states)) ids.add(info.name.toString('hex'));
  }
  return { ids };
}
