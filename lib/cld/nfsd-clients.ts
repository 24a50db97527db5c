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

/** One client directory of nfsd's, as far as it could be read (it may go at any moment). */
export interface NfsdClient {
  /** The directory's name under clients/ (nfsd's own number for the client). */
  dir: string;
  /** Hex of the name, as the store keys records. */
  id: string;
  minorVersion: number;
  status: string;
  /** Whether its states file lists any state (read only for the clients asked: a server may have 100,000). */
  holdsState?: boolean;
}

/**
 * Every client nfsd lists now, or why its filesystem cannot be read (not
 * mounted here, an old kernel without clients/, no CAP_DAC_READ_SEARCH:
 * clients/ is mode 0600). A client that goes away between the listing and
 * the reads is not listed.
 */
export function listClients(nfsdDir: string, withStates: (c: NfsdClient) => boolean): { clients: NfsdClient[] } | { error: string } {
  const dir = path.join(nfsdDir, 'clients');
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    return { error: `cannot list ${dir}: ${(e as Error).message}` };
  }
  const clients: NfsdClient[] = [];
  let denied: string | null = null;
  for (const n of entries) {
    let info: ClientInfo | null;
    try {
      info = parseClientInfo(fs.readFileSync(path.join(dir, n, 'info'), 'latin1'));
    } catch (e) {
      // Listed but unreadable: no capability to search it. Not a client gone.
      if ((e as NodeJS.ErrnoException).code === 'EACCES') denied ??= `cannot read ${path.join(dir, n, 'info')}: ${(e as Error).message}`;
      continue;
    }
    if (!info || info.name.length === 0) continue;
    const c: NfsdClient = { dir: n, id: info.name.toString('hex'), minorVersion: info.minorVersion, status: info.status };
    if (withStates(c)) {
      try {
        c.holdsState = holdsState(fs.readFileSync(path.join(dir, n, 'states'), 'latin1'));
      } catch {
        continue;
      }
    }
    clients.push(c);
  }
  return denied !== null ? { error: denied } : { clients };
}

/** The confirmed v4.0 clients that hold state now: id -> directory. */
export function heldV40Clients(nfsdDir: string = NFSD_DIR): { held: Map<string, string> } | { error: string } {
  const v40 = (c: NfsdClient) => c.minorVersion === 0 && c.status === 'confirmed';
  const r = listClients(nfsdDir, v40);
  if ('error' in r) return r;
  const held = new Map<string, string>();
  for (const c of r.clients) if (v40(c) && c.holdsState) held.set(c.id, c.dir);
  return { held };
}
