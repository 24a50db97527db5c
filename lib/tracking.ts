// What the kernel's client-tracking events mean for a client's record, for
// both front ends: the upcall (lib/commands.ts) and the cld daemon
// (lib/cld/). Pure: states in, states out.
//
// The rules are nfsdcld's (nfs-utils 2.6.2), on a logical clock instead of
// the wall clock: the store keeps two epoch numbers, current and recovery
// (0 outside grace), and each record says in which epochs the client is
// recorded, as nfsdcld keeps one rec-<epoch> table per epoch. A grace start
// makes the current epoch the recovery one and opens a new, empty current
// one; the clients of the recovery epoch may reclaim; a grace end forgets the
// recovery epoch. Neither rewrites a record: a membership in an epoch that is
// neither current nor recovery is simply dead, and compaction drops it.
import type { Epochs, Membership, RecState } from './store/format';

const epochOf = (s: RecState): number => s.epoch ?? 1;
const live = (epoch: number, ep: Epochs): boolean => epoch === ep.current || (ep.recovery !== 0 && epoch === ep.recovery);

/** The client's memberships that are still live, newest first. */
export function memberships(s: RecState, ep: Epochs): Membership[] {
  const out: Membership[] = [];
  if (live(epochOf(s), ep)) out.push({ epoch: epochOf(s), ph: s.ph ?? null });
  if (s.older && live(s.older.epoch, ep)) out.push(s.older);
  return out;
}

/**
 * The record as it stands under these epochs: dead memberships dropped, null
 * when none is left (the client is not recorded at all).
 */
export function liveState(s: RecState | null, ep: Epochs): RecState | null {
  if (s === null) return null;
  const m = memberships(s, ep);
  if (m.length === 0) return null;
  const [head, older] = m;
  if (head.epoch === epochOf(s) && (older ?? null) === (s.older ?? null)) return s;
  return { time: s.time, session: s.session, epoch: head.epoch, ph: head.ph, older: older ?? null };
}

/** The client's membership in the recovery epoch: whether (and with which princhash) it may reclaim. */
export function recoveryMembership(s: RecState | null, ep: Epochs): Membership | null {
  // Without building the list: a grace start asks this of every record.
  if (s === null || ep.recovery === 0) return null;
  if (epochOf(s) === ep.recovery) return { epoch: ep.recovery, ph: s.ph ?? null };
  return s.older?.epoch === ep.recovery ? s.older : null;
}

/**
 * Create: the client is recorded in the current epoch (replacing what it had
 * there), keeping its place in the recovery epoch. `time` and `session` are
 * the upcall's (SPEC §4); the daemon, which is not told the minor version,
 * passes what the record had, or false (v4.0: the safe guess for ending grace
 * early, which waits for v4.0 clients).
 */
export function created(prev: RecState | null, ep: Epochs, c: { time: number; session: boolean; ph: string | null }): RecState {
  const rec = recoveryMembership(prev, ep);
  const older = rec && rec.epoch !== ep.current ? rec : null;
  return { time: c.time, session: c.session, epoch: ep.current, ph: c.ph, older };
}

/**
 * The daemon's Remove: nfsdcld deletes the client from the current epoch
 * only, so that if nfsd restarts during grace the client may still reclaim.
 * (The upcall's remove deletes the whole record, as the C nfsdcltrack does.)
 */
export function removedFromCurrent(prev: RecState | null, ep: Epochs): RecState | null {
  const rec = recoveryMembership(prev, ep);
  if (!rec || !prev) return null;
  return { time: prev.time, session: prev.session, epoch: rec.epoch, ph: rec.ph, older: null };
}

/**
 * A grace start (nfsd starting): outside grace, the current epoch becomes the
 * recovery one; during grace (nfsd restarted before grace ended), the
 * recovery epoch stays. Either way a new, empty current epoch begins.
 */
export function graceStarted(ep: Epochs): Epochs {
  return { current: ep.current + 1, recovery: ep.recovery === 0 ? ep.current : ep.recovery };
}

/**
 * A client nfsd says reclaimed in this grace period without telling us (a
 * v4.0 client: lib/cld/nfsd-clients.ts): recorded in the current epoch, as a
 * Create would, if it may reclaim and is not there yet; null when there is
 * nothing to change. A client that has no recovery membership is never
 * added: nfsd could not have let it reclaim.
 */
export function reclaimedUntold(prev: RecState | null, ep: Epochs, time: number): RecState | null {
  const rec = recoveryMembership(prev, ep);
  if (!rec || !prev || rec.epoch === ep.current || memberships(prev, ep).some((m) => m.epoch === ep.current)) return null;
  return created(prev, ep, { time, session: prev.session, ph: rec.ph });
}

/** A grace end: the recovery epoch is forgotten, with every client that did not reclaim. */
export function graceEnded(ep: Epochs): Epochs {
  return { current: ep.current, recovery: 0 };
}
