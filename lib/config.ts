// What nfsdcltrack takes from nfs.conf. nfs-utils' nfsdcltrack.c
// (read_nfsdcltrack_conf) does:
//     conf_init_file(NFS_CONFFILE);
//     xlog_set_debug("nfsdcltrack");
//     val = conf_get_str("nfsdcltrack", "storagedir");
// so only section [nfsdcltrack] counts: there is no [general] fallback.

import type { HaSettings } from './ha';
import { Env, loadNfsConf, NfsConf, Warn } from './nfsconf';

export interface TrackConfig extends HaSettings {
  /** [nfsdcltrack] storagedir, when set (after "$NAME" expansion) */
  storagedir?: string;
  /** true when [nfsdcltrack] debug enables any facility */
  debug: boolean;
}

export const DEFAULT_NFS_CONF = '/etc/nfs.conf';

// xlog.c debugnames[] (nfs-utils >= 2.6.3): "0" changes nothing, "1" = all.
export const D_GENERAL = 0x0001;
export const D_CALL = 0x0002;
export const D_AUTH = 0x0004;
export const D_PARSE = 0x0010;
export const D_ALL = 0x00ff;

const FACILITIES: Record<string, number> = {
  '0': 0,
  general: D_GENERAL,
  call: D_CALL,
  auth: D_AUTH,
  parse: D_PARSE,
  all: D_ALL,
  '1': D_ALL,
};

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * xlog_set_debug(): the value is a comma-separated list (conf_get_list:
 * white space around each item ignored, empty items skipped); each item is
 * matched case-insensitively. Returns the facility mask; an unknown item is
 * warned about and ignored.
 */
export function parseDebugFacilities(value: string | undefined, warn: Warn): number {
  if (value === undefined) return 0;
  let mask = 0;
  let start = 0;
  const n = value.length;
  while (start <= n) {
    let end = value.indexOf(',', start);
    if (end < 0) end = n;
    let a = start;
    let b = end;
    while (a < b && isSpace(value.charCodeAt(a))) a++;
    while (b > a && isSpace(value.charCodeAt(b - 1))) b--;
    if (b > a) {
      const item = value.slice(a, b);
      let lower = '';
      for (let i = 0; i < item.length; i++) {
        const c = item.charCodeAt(i);
        lower += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : item[i];
      }
      const fac = Object.prototype.hasOwnProperty.call(FACILITIES, lower) ? FACILITIES[lower] : undefined;
      if (fac === undefined) warn(`unknown debug facility '${item}'`);
      else mask |= fac;
    }
    start = end + 1;
  }
  return mask;
}

/**
 * The [nfsdcltrack] settings of an already loaded configuration. One store
 * serves both kernel interfaces, so that a fallback from the daemon to the
 * upcall (or back) loses no client: without [nfsdcltrack] storagedir the
 * upcall uses [nfsdcld] storagedir, and the daemon the other way round.
 */
export function trackConfigFrom(conf: NfsConf, warn: Warn): TrackConfig {
  const mask = parseDebugFacilities(conf.get('nfsdcltrack', 'debug'), warn);
  const storagedir = conf.get('nfsdcltrack', 'storagedir') ?? conf.get('nfsdcld', 'storagedir');
  const cfg: TrackConfig = { debug: mask !== 0, ...haSettings(conf, 'nfsdcltrack', 'nfsdcld') };
  if (storagedir !== undefined) cfg.storagedir = storagedir;
  return cfg;
}

/**
 * store-id, storage-mountpoint and state-dir (docs/ha.md), from the
 * program's own section, else the other one's: like storagedir, they
 * describe the one store both front ends serve.
 */
function haSettings(conf: NfsConf, own: string, other: string): HaSettings {
  const get = (key: string): string | undefined => conf.get(own, key) ?? conf.get(other, key);
  const out: HaSettings = {};
  const storeId = get('store-id');
  const mountPoint = get('storage-mountpoint');
  const stateDir = get('state-dir');
  if (storeId !== undefined) out.storeId = storeId.toLowerCase();
  if (mountPoint !== undefined) out.storageMountpoint = mountPoint;
  if (stateDir !== undefined) out.stateDir = stateDir;
  return out;
}

/**
 * Read nfs.conf as nfsdcltrack does. The main file is
 * env.NFSDCLTRACK_CONF_FILE when set and not empty (a test hook: the kernel
 * never sets it), else /etc/nfs.conf. Never throws.
 */
export function loadTrackConfig(env: Env, warn: Warn): TrackConfig {
  return trackConfigFrom(loadConf(env, warn), warn);
}

/** nfs.conf, from env.NFSDCLTRACK_CONF_FILE when set and not empty, else /etc/nfs.conf. */
export function loadConf(env: Env, warn: Warn): NfsConf {
  const override = env.NFSDCLTRACK_CONF_FILE;
  return loadNfsConf(override !== undefined && override !== '' ? override : DEFAULT_NFS_CONF, env, warn);
}

export interface CldConfig extends TrackConfig {
  /** [general] pipefs-directory */
  pipefsDir?: string;
}

/** The daemon's settings, as nfsdcld reads them: [nfsdcld] storagedir and debug, [general] pipefs-directory. */
export function loadCldConfig(env: Env, warn: Warn): CldConfig {
  const conf = loadConf(env, warn);
  // nfsdcld reads debug as a number (conf_get_num): any value above 0 enables it.
  const debug = Number.parseInt(conf.get('nfsdcld', 'debug') ?? '0', 10) > 0;
  const cfg: CldConfig = { debug, ...haSettings(conf, 'nfsdcld', 'nfsdcltrack') };
  const storagedir = conf.get('nfsdcld', 'storagedir') ?? conf.get('nfsdcltrack', 'storagedir');
  if (storagedir !== undefined) cfg.storagedir = storagedir;
  const pipefs = conf.get('general', 'pipefs-directory');
  if (pipefs !== undefined) cfg.pipefsDir = pipefs;
  return cfg;
}
