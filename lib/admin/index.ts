// Administrator commands (list, status, verify, compact, import, export).
import type { Logger } from '../log';

export interface AdminContext {
  env: Record<string, string | undefined>;
  log: Logger;
  defaultStoragedir: string;
}

export async function runAdmin(argv: string[], ctx: AdminContext): Promise<number> {
  ctx.log.foreground = true;
  ctx.log.error(`admin commands are not available in this build (${argv.join(' ')})`);
  return 2;
}
