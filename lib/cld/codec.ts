// The kernel's cld wire format (include/uapi/linux/nfsd/cld.h; CLD.md):
// packed structs in host byte order, little-endian on every platform nfsd
// runs this on. Pure: no I/O.
//
//   0 cm_vers u8 | 1 cm_cmd u8 | 2 cm_status s16 | 4 cm_xid u32 | 8 union
//   union: cn_len u16 @8, cn_id[1024] @10 (v1 ends at 1034);
//          v2 adds cp_len u8 @1034, cp_data[32] @1035 (ends at 1067);
//          cm_version u8 @8 (GetVersion reply), cm_gracetime s64 @8 (v0 GraceDone).
import { EACCES, EINVAL, EREMOTEIO } from '../errno';

export { EACCES, EINVAL, EREMOTEIO };
export const EOPNOTSUPP = 95;
export const EINPROGRESS = 115;

export const CLD_HDR_SIZE = 8;
export const CLD_V1_SIZE = 1034;
export const CLD_V2_SIZE = 1067;
export const CLD_NAME_MAX = 1024;
export const CLD_PRINCHASH_SIZE = 32;
export const Cmd = { Create: 0, Remove: 1, Check: 2, GraceDone: 3, GraceStart: 4, GetVersion: 5 } as const;
/** The highest protocol version we speak (the GetVersion answer). */
export const CLD_VERSION = 2;

const OFF_NAME_LEN = 8;
const OFF_NAME = 10;
const OFF_PRINC_LEN = OFF_NAME + CLD_NAME_MAX; // 1034
const OFF_PRINC = OFF_PRINC_LEN + 1; // 1035

export interface CldHeader {
  vers: number;
  cmd: number;
  status: number;
  xid: number;
}

/** The client named by a Create/Remove/Check message: validated. */
export type ClientInfo = { name: Buffer; princhash: Buffer | null };

/** Size of a whole message of this version; null for a version we do not know. */
export function messageSize(vers: number): number | null {
  return vers === 1 ? CLD_V1_SIZE : vers === 2 ? CLD_V2_SIZE : null;
}

function view(msg: Uint8Array): DataView {
  return new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
}

export function decodeHeader(msg: Uint8Array): CldHeader {
  if (msg.byteLength < CLD_HDR_SIZE) throw new RangeError(`cld header needs ${CLD_HDR_SIZE} bytes, got ${msg.byteLength}`);
  const v = view(msg);
  return { vers: v.getUint8(0), cmd: v.getUint8(1), status: v.getInt16(2, true), xid: v.getUint32(4, true) };
}

export function decodeClient(msg: Buffer): { ok: true; client: ClientInfo } | { ok: false; why: string } {
  if (msg.length < CLD_HDR_SIZE) return { ok: false, why: `short message (${msg.length} bytes)` };
  const vers = msg[0];
  const size = messageSize(vers);
  if (size === null) return { ok: false, why: `unknown version ${vers}` };
  if (msg.length < size) return { ok: false, why: `v${vers} message of ${msg.length} bytes, need ${size}` };
  const len = msg.readUInt16LE(OFF_NAME_LEN);
  if (len === 0) return { ok: false, why: 'empty client name' };
  if (len > CLD_NAME_MAX) return { ok: false, why: `client name length ${len} > ${CLD_NAME_MAX}` };
  const name = Buffer.from(msg.subarray(OFF_NAME, OFF_NAME + len));
  if (vers === 1) return { ok: true, client: { name, princhash: null } };
  const plen = msg[OFF_PRINC_LEN];
  if (plen !== 0 && plen !== CLD_PRINCHASH_SIZE) return { ok: false, why: `princhash length ${plen} (must be 0 or ${CLD_PRINCHASH_SIZE})` };
  const princhash = plen === 0 ? null : Buffer.from(msg.subarray(OFF_PRINC, OFF_PRINC + plen));
  return { ok: true, client: { name, princhash } };
}

/** An ordinary reply: the upcall echoed with cm_status (and, for GetVersion, cm_version) set. */
export function encodeReply(msg: Buffer, status: number, version?: number): Buffer {
  const out = Buffer.from(msg);
  out.writeInt16LE(status, 2);
  if (version !== undefined) out.writeUInt8(version, 8);
  return out;
}

function writeClient(out: Buffer, vers: number, client: ClientInfo): void {
  if (client.name.length > CLD_NAME_MAX) throw new RangeError(`client name of ${client.name.length} bytes`);
  out.writeUInt16LE(client.name.length, OFF_NAME_LEN);
  client.name.copy(out, OFF_NAME);
  if (vers === 2 && client.princhash) {
    if (client.princhash.length > CLD_PRINCHASH_SIZE) throw new RangeError(`princhash of ${client.princhash.length} bytes`);
    out.writeUInt8(client.princhash.length, OFF_PRINC_LEN);
    client.princhash.copy(out, OFF_PRINC);
  }
}

/** A GraceStart -EINPROGRESS downcall: the upcall's vers/cmd/xid, this status, the union holding only this client. */
export function encodeClient(msg: Buffer, status: number, client: ClientInfo): Buffer {
  const h = decodeHeader(msg);
  return encodeMessage({ vers: h.vers, cmd: h.cmd, xid: h.xid, status }, client);
}

/**
 * GraceStart's downcalls, one buffer for all of them: a 100,000-client grace
 * start otherwise allocates and collects 100,000 messages. Each set() returns
 * that buffer refilled (the union holding only this client, decoded from the
 * hex digits the store holds, straight from its bytes): write it out before
 * the next set(). Only the bytes the client before left beyond this one's
 * are zeroed, not the whole union.
 */
export class ClientDowncalls {
  readonly buf: Buffer;
  /** The name length and whether a princhash is in the buffer now. */
  private nameLen = 0;
  private hasPh = false;

  constructor(msg: Buffer, status: number) {
    const h = decodeHeader(msg);
    this.buf = encodeMessage({ vers: h.vers, cmd: h.cmd, xid: h.xid, status });
  }

  /** The client whose name is the hex digits hex[from, to), with the princhash of 64 hex digits at hex[ph] (-1: none). */
  set(hex: Uint8Array, from: number, to: number, ph: number): Buffer {
    const b = this.buf;
    const len = unhex(hex, from, Math.min(to, from + 2 * CLD_NAME_MAX), b, OFF_NAME);
    for (let k = OFF_NAME + len; k < OFF_NAME + this.nameLen; k++) b[k] = 0;
    this.nameLen = len;
    b[OFF_NAME_LEN] = len & 0xff;
    b[OFF_NAME_LEN + 1] = len >> 8;
    if (b[0] !== 2) return b;
    if (ph >= 0) {
      b[OFF_PRINC_LEN] = unhex(hex, ph, ph + 2 * CLD_PRINCHASH_SIZE, b, OFF_PRINC);
      this.hasPh = true;
    } else if (this.hasPh) {
      b.fill(0, OFF_PRINC_LEN, OFF_PRINC + CLD_PRINCHASH_SIZE);
      this.hasPh = false;
    }
    return b;
  }
}

/** PAIR[c << 8 | d]: the byte that the lowercase hex digits c, d stand for (the store's ids are checked hex): one load a byte. */
const PAIR = new Uint8Array(65536);
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0');
  PAIR[(h.charCodeAt(0) << 8) | h.charCodeAt(1)] = i;
}

/** Hex digits src[from, to) as bytes into dst at `at`; how many bytes. */
function unhex(src: Uint8Array, from: number, to: number, dst: Buffer, at: number): number {
  let n = 0;
  for (let i = from; i + 1 < to; i += 2) dst[at + n++] = PAIR[(src[i] << 8) | src[i + 1]];
  return n;
}

/** Builds a whole message (an upcall, for tests and drivers); v1 GraceDone may carry cm_gracetime. */
export function encodeMessage(h: { vers: number; cmd: number; xid: number; status?: number }, client?: ClientInfo, gracetime?: bigint): Buffer {
  const size = messageSize(h.vers);
  if (size === null) throw new RangeError(`unknown cld version ${h.vers}`);
  const out = Buffer.alloc(size);
  out.writeUInt8(h.vers, 0);
  out.writeUInt8(h.cmd, 1);
  out.writeInt16LE(h.status ?? 0, 2);
  out.writeUInt32LE(h.xid >>> 0, 4);
  if (client) writeClient(out, h.vers, client);
  if (gracetime !== undefined) out.writeBigInt64LE(gracetime, 8);
  return out;
}

export function decodeGraceTime(msg: Buffer): bigint {
  return msg.readBigInt64LE(8);
}

export type Framed = { msg: Buffer } | { error: string; header: CldHeader | null };

/**
 * Frames a byte stream (a pty) or a message pipe (rpc_pipefs: each read
 * returns at most the rest of one message) into messages: the header first,
 * then exactly the rest for that version. Holds at most one message.
 */
export class MessageFramer {
  private buf = Buffer.alloc(CLD_V2_SIZE);
  private have = 0;
  private need = CLD_HDR_SIZE;

  push(chunk: Buffer): Framed[] {
    const out: Framed[] = [];
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.need - this.have, chunk.length - off);
      chunk.copy(this.buf, this.have, off, off + n);
      this.have += n;
      off += n;
      if (this.have < this.need) break;
      if (this.need === CLD_HDR_SIZE) {
        const header = decodeHeader(this.buf);
        const size = messageSize(header.vers);
        if (size === null) {
          // On rpc_pipefs a read never spans two messages, so dropping the
          // rest of this chunk lands exactly on the next message.
          out.push({ error: `unknown cld version ${header.vers}`, header });
          this.reset();
          break;
        }
        this.need = size;
        continue;
      }
      out.push({ msg: Buffer.from(this.buf.subarray(0, this.need)) });
      this.reset();
    }
    return out;
  }

  /** Drops a partial message (the pipe was reopened). */
  reset(): void {
    this.have = 0;
    this.need = CLD_HDR_SIZE;
  }
}
