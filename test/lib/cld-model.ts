// A pure model of Debian 12's nfsdcld (nfs-utils 2.6.2, utils/nfsdcld/
// nfsdcld.c + sqlite.c) as seen through the pipe, on a kernel >= 4.20 (so
// cld_check_grace_period() never starts grace by itself) and a store with
// nothing to import on first start (the first_time logic then changes
// nothing visible). The state is what the SQLite file holds, so it survives
// daemon restarts unchanged. Only inputs nfsdcld handles deterministically
// are modelled: a name length of 1..1024 and, in v2, cp_len 0 or 32 (2.6.2
// stores an empty name and sends it back at GraceStart, which later
// nfs-utils skips; longer lengths read past the field).
import { ClientInfo, Cmd, CLD_VERSION, decodeClient, decodeHeader, EACCES, EINPROGRESS, EOPNOTSUPP, encodeClient, encodeReply } from '../../lib/cld/codec';

type Table = Map<string, ClientInfo>; // key: name as hex

export class CldModel {
  current = 1;
  recovery = 0;
  /** rec-<epoch> tables. A Map iterates in insertion order, as SQLite's full scan of a rowid table does; a replace goes last. */
  private tables = new Map<number, Table>([[1, new Map()]]);

  /** The records of an epoch, in the order a GraceStart would send them. */
  records(epoch: number): ClientInfo[] {
    return [...(this.tables.get(epoch)?.values() ?? [])];
  }

  /** The downcalls nfsdcld writes for this upcall, in order. */
  apply(msg: Buffer): Buffer[] {
    const h = decodeHeader(msg);
    switch (h.cmd) {
      case Cmd.GetVersion:
        return [encodeReply(msg, 0, CLD_VERSION)];
      case Cmd.Create: {
        // cld_create(): v2 binds cp_len bytes of princhash (none when 0); v1 only the id. INSERT OR REPLACE.
        this.insert(this.current, client(msg));
        return [encodeReply(msg, 0)];
      }
      case Cmd.Remove:
        this.table(this.current).delete(key(client(msg)));
        return [encodeReply(msg, 0)];
      case Cmd.Check: {
        // An old kernel's first check means grace has begun.
        if (this.recovery === 0) this.graceStart();
        const c = client(msg);
        if (!this.table(this.recovery).has(key(c))) return [encodeReply(msg, -EACCES)];
        this.insert(this.current, { name: c.name, princhash: null }); // sqlite_insert_client(): id only
        return [encodeReply(msg, 0)];
      }
      case Cmd.GraceDone:
        // Not in grace: an old kernel whose grace saw no reclaim; start one, then end it (the current records go).
        if (this.recovery === 0) this.graceStart();
        this.tables.delete(this.recovery);
        this.recovery = 0;
        return [encodeReply(msg, 0)];
      case Cmd.GraceStart: {
        this.graceStart();
        // sqlite_iterate_recovery() rewrites the one message buffer per record (union zeroed, then name and
        // princhash), so the final status-0 reply carries the last record sent, or the upcall's own union.
        const out: Buffer[] = [];
        let last = msg;
        for (const c of this.records(this.recovery)) {
          last = encodeClient(msg, -EINPROGRESS, c);
          out.push(last);
        }
        out.push(encodeReply(last, 0));
        return out;
      }
      default:
        return [encodeReply(msg, -EOPNOTSUPP)];
    }
  }

  private table(epoch: number): Table {
    const t = this.tables.get(epoch);
    if (!t) throw new Error(`model: no table for epoch ${epoch}`);
    return t;
  }

  private insert(epoch: number, c: ClientInfo): void {
    const t = this.table(epoch);
    t.delete(key(c));
    t.set(key(c), c);
  }

  /** sqlite_grace_start(): a new epoch, or (nfsd restarted in grace) the current epoch's records cleared. */
  private graceStart(): void {
    if (this.recovery === 0) {
      this.recovery = this.current;
      this.current++;
    }
    this.tables.set(this.current, new Map());
  }
}

function client(msg: Buffer): ClientInfo {
  const d = decodeClient(msg);
  if (!d.ok) throw new Error(`model: nfsdcld's answer to this is not modelled: ${d.why}`);
  return d.client;
}

function key(c: ClientInfo): string {
  return c.name.toString('hex');
}
