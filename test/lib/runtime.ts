// The runtime the tests run dist/cli.js under: NFSDCLTRACK_TEST_RUNTIME=bun
// picks the Bun of node_modules/@oven (what dist/nfsdcltrack runs when it is
// installed), anything else this Node. CI runs the suite once under each, so
// that neither runtime can rot (docs/performance.md).
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const BUN = ['@oven/bun-linux-x64', '@oven/bun-linux-x64-baseline', '@oven/bun-linux-aarch64']
  .map((p) => path.join(ROOT, 'node_modules', p, 'bin', 'bun'))
  .find((p) => fs.existsSync(p));

export const TEST_RUNTIME_NAME: 'node' | 'bun' = process.env.NFSDCLTRACK_TEST_RUNTIME === 'bun' ? 'bun' : 'node';
if (TEST_RUNTIME_NAME === 'bun' && !BUN) throw new Error('NFSDCLTRACK_TEST_RUNTIME=bun, but node_modules/@oven/bun-linux-x64 is not installed');
/** Absolute path of the runtime: `${TEST_RUNTIME} dist/cli.js ...`. */
export const TEST_RUNTIME: string = TEST_RUNTIME_NAME === 'bun' ? BUN! : process.execPath;
