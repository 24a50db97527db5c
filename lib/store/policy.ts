// When a write folds the journal into a new snapshot. Pure.
//
// A compaction rewrites the whole snapshot (S bytes, N records, so about
// e = S / N bytes a record and a journal entry); every call reads the whole
// journal. With a threshold of T bytes, a compaction comes every T / e
// writes, and a call sees T / 2 of journal on average, so a write costs
//   c·S·e / T  (its share of a compaction)  +  r·T / 2  (its journal read),
// plus r·T / 2 for each read-only call. Measured (bench/results.md, 100,000
// clients with 1 KB ids, S = 198 MiB, Bun): c ≈ 7.5 ms/MiB rewritten, r ≈
// 30 ms/MiB of journal read (60 for short ids), so c/r ≈ 1/4. With as many
// reads as writes, the sum is least at T = sqrt(c/r · S·e) ≈ S / (2·sqrt(N)).
// A threshold that grows with S (S / 4, say) keeps the compaction's share
// flat but puts tens of MiB of journal in front of every call; a fixed one
// (32 KiB) rewrote that 198 MiB store every 16th write. Ordinary stores
// (short ids, up to ~10^5 clients) stay at the floor.
export function compactThreshold(floor: number, snapshotBytes: number, records: number): number {
  return Math.max(floor, snapshotBytes / (2 * Math.sqrt(Math.max(1, records))));
}
