// dist/nocaps, the launchers' interpreter on x86-64: it empties the
// capability sets and execs the runtime (scripts/nocaps.S says how and why).
// No compiler is needed, here or on the target: the machine code is below, as
// assembled from scripts/nocaps.S (test/caps.ts assembles that file and
// checks dist/nocaps against it), and this module wraps it in the smallest
// executable the kernel loads: an ELF header and two program headers, one
// read+execute segment for the whole file, and a non-executable stack.

/** objcopy -O binary -j .text of `as scripts/nocaps.S` (position-independent). */
const CODE =
  '4c8b24244c8d6c24084f8d74e5084c8d3d870100004983fc020f825d010000498b750831c949833cce00740548ffc1eb' +
  'f431d2803c1600741248ffc24881fa001000000f8733010000ebe8488d44110248c1e0034829c44883e4f04889e331ff' +
  '4531c08a063c2074433c09743f84c074404d85c074104585c90f84fd0000004c8904fb48ffc74989f04531c98a0684c0' +
  '741f3c2074133c09740f3c3d750641b90100000048ffc6ebe3c6060048ffc6ebb24d85c00f84c20000004d89450831c9' +
  '498b04ce488904fb48ffc748ffc14885c075ed4c8d3df40000004883ec20c7042422050820c744240400000000b87d00' +
  '00004889e7488d7424080f0585c0757c8b44240c0b442418742e4531e4b89d000000bf170000004c89e60f0585c07818' +
  'b89d000000bf180000004c89e60f0585c0754949ffc4ebd531c0488944240848894424104889442418c7042422050820' +
  'b87e0000004889e7488d7424080f0585c075194c8d3d86000000498b7d08498d75084889dab83b0000000f05410fb617' +
  '498d7701bf02000000b8010000000f05bf7f000000b8e70000000f05316e6f636170733a2075736167653a2023216e6f' +
  '63617073205b4e414d453d56414c5545202e2e2e5d2052554e54494d450a216e6f636170733a2063616e6e6f74206472' +
  '6f70206361706162696c69746965730a236e6f636170733a2063616e6e6f742065786563757465207468652072756e74' +
  '696d650a';

const EHDR = 64; // ELF64 header
const PHDR = 56; // a program header
export const CODE_OFFSET = EHDR + 2 * PHDR;

/** The executable's bytes. */
export function nocapsElf() {
  const code = Buffer.from(CODE, 'hex');
  const size = BigInt(CODE_OFFSET + code.length);
  const b = Buffer.alloc(CODE_OFFSET);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2 /* 64-bit */, 1 /* little-endian */, 1 /* ELF version */, 0 /* System V ABI */], 0);
  b.writeUInt16LE(3, 16); // e_type: ET_DYN, position-independent (the kernel picks a random address)
  b.writeUInt16LE(62, 18); // e_machine: EM_X86_64
  b.writeUInt32LE(1, 20); // e_version
  b.writeBigUInt64LE(BigInt(CODE_OFFSET), 24); // e_entry: _start, the code's first byte
  b.writeBigUInt64LE(BigInt(EHDR), 32); // e_phoff
  b.writeBigUInt64LE(0n, 40); // e_shoff: no section headers
  b.writeUInt32LE(0, 48); // e_flags
  b.writeUInt16LE(EHDR, 52); // e_ehsize
  b.writeUInt16LE(PHDR, 54); // e_phentsize
  b.writeUInt16LE(2, 56); // e_phnum
  // e_shentsize, e_shnum, e_shstrndx: 0
  const load = EHDR;
  b.writeUInt32LE(1, load); // PT_LOAD
  b.writeUInt32LE(5, load + 4); // PF_R | PF_X
  b.writeBigUInt64LE(0n, load + 8); // p_offset: the whole file...
  // p_vaddr, p_paddr: 0, relative to where the kernel maps the file
  b.writeBigUInt64LE(size, load + 32); // p_filesz
  b.writeBigUInt64LE(size, load + 40); // p_memsz: ...and nothing more (no data, no bss)
  b.writeBigUInt64LE(0x1000n, load + 48); // p_align
  const stack = EHDR + PHDR;
  b.writeUInt32LE(0x6474e551, stack); // PT_GNU_STACK
  b.writeUInt32LE(6, stack + 4); // PF_R | PF_W: not executable
  b.writeBigUInt64LE(16n, stack + 48); // p_align
  return Buffer.concat([b, code]);
}
