// CRC-32 (IEEE, the one zlib and Python's zlib.crc32 compute): every store line
// carries one, so that a torn or damaged line is recognised and never applied.
const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 of the UTF-16 code units of an ASCII string (store lines are ASCII). */
export function crc32(s: string, from = 0, to = s.length): number {
  let c = -1;
  for (let i = from; i < to; i++) c = TABLE[(c ^ s.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Tables for four bytes a step ("slicing-by-4"): T1[n] is the CRC of n followed by one zero byte, and so on. */
const [T1, T2, T3] = (() => {
  const next = (t: Int32Array) => t.map((c) => TABLE[c & 0xff] ^ (c >>> 8));
  const t1 = next(TABLE);
  const t2 = next(t1);
  return [t1, t2, next(t2)];
})();

/**
 * The same over bytes: indexing a Buffer is a plain load where charCodeAt is
 * a call, which matters in cold code (every upcall checks its whole journal);
 * four bytes a step, a third of the time (a grace start checks every line of
 * the snapshot).
 */
export function crc32Bytes(b: Uint8Array, from: number, to: number): number {
  let c = -1;
  let i = from;
  for (const end4 = to - 3; i < end4; i += 4) {
    c ^= b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    c = T3[c & 0xff] ^ T2[(c >>> 8) & 0xff] ^ T1[(c >>> 16) & 0xff] ^ TABLE[c >>> 24];
  }
  for (; i < to; i++) c = TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** The CRC as the eight lowercase hex digits written in the store. */
export function crcHex(s: string, from = 0, to = s.length): string {
  return crc32(s, from, to).toString(16).padStart(8, '0');
}
