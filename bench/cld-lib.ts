// What bench/cld.mjs needs from the TypeScript sources, in one entry that it
// bundles with esbuild (the driver finds pty-relay.py beside the bundle).
export { CldDriver, isolated, type DaemonSpec, type CallResult } from '../test/lib/cld-driver';
export { Cmd, decodeClient, decodeHeader, encodeMessage, EINPROGRESS, CLD_V2_SIZE } from '../lib/cld/codec';
export { Store } from '../lib/store/store';
export { referenceProgram } from '../test/lib/reference';
