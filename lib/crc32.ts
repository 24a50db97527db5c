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

/**
 * The same over bytes: indexing a Buffer is a plain load where charCodeAt is
 * a call, which matters in cold code (every upcall checks its whole journal).
 */
export function crc32Bytes(b: Uint8Array, from: number, to: number): number {
  let c = -1;
  for (let i = from; i < to; i++) c = TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** The CRC as the eight lowercase hex digits written in the store. */
export function crcHex(s: string, from = 0, to = s.length): string {
  return crc32(s, from, to).toString(16).padStart(8, '0');
}
