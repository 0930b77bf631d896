import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { diskFullScenario } from "./disk-full-suite.js";

// The embedded store on a real filesystem that fills up: a small tmpfs mounted by the test
// (root only; skipped otherwise).

const MOUNT_MB = 24;
/** Made before the broker fills the disk, deleted to free space again. */
const FILLER_BYTES = 4 << 20;

const mounts: string[] = [];
after(() => {
  for (const dir of mounts) {
    try {
      execFileSync("umount", [dir], { stdio: "pipe" });
    } catch {
      // Already unmounted.
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A fresh tmpfs of MOUNT_MB under a temp dir, or why none can be had here. */
function mountTmpfs(): string | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: "mounting a tmpfs needs root" };
  const dir = mkdtempSync(join(tmpdir(), "nb-disk-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${MOUNT_MB}m`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `mount -t tmpfs is not permitted here: ${String(err).split("\n")[0]}` };
  }
  mounts.push(dir);
  return dir;
}

/** Takes every byte left on the filesystem of `path` (writes until ENOSPC). */
function fillUp(path: string): void {
  const fd = openSync(path, "w");
  try {
    // Big chunks first, then small ones for what is left.
    for (const size of [64 << 10, 512]) {
      const chunk = Buffer.alloc(size, 7);
      for (;;) {
        try {
          if (writeSync(fd, chunk) < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

for (const writerThread of [false, true]) {
  const mode = writerThread
    ? "writer thread; callers of queued packs give up and retry with the same ids"
    : "in-thread store; callers of queued packs wait";
  test(`sqlite (${mode}) on a full tmpfs: SendPack is refused promptly with RESOURCE_EXHAUSTED naming the file, nothing confirmed is lost, no seq gap, and publishing resumes once space is freed`, async (t) => {
    const dir = mountTmpfs();
    if (typeof dir !== "string") {
      t.skip(dir.skip);
      return;
    }
    const filler = join(dir, "filler");
    const rest = join(dir, "rest");
    writeFileSync(filler, Buffer.alloc(FILLER_BYTES, 1));
    const path = join(dir, "nb.db");
    await diskFullScenario({
      store: `sqlite:${path}`,
      place: path,
      // One variant's callers wait for their packs, the other's give up before space is freed.
      overrides: writerThread ? { sqliteWriterThread: true, confirmTimeoutMs: 3000 } : {},
      callersGiveUp: writerThread,
      exhaust: () => fillUp(rest),
      free: async () => {
        rmSync(rest, { force: true });
        unlinkSync(filler);
      },
    });
  });
}
