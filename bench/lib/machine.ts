import { execFileSync } from "node:child_process";
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { REPO } from "./repo.js";
import { now, percentiles } from "./stats.js";

/** The SQLite version better-sqlite3 embeds (the one the broker uses). */
export function sqliteVersion(): string {
  const mem = new Database(":memory:");
  try {
    return (mem.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  } finally {
    mem.close();
  }
}

/** 300 × (4 KiB write + fdatasync) into a file in `dir`: what one durable commit costs here. */
export function fsyncProbe(dir: string): { p50Ms: number; p99Ms: number; maxMs: number } {
  const file = join(dir, "fsync-probe");
  const fd = openSync(file, "w");
  const block = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      const t = now();
      writeSync(fd, block, 0, block.length, (i % 64) * 4096);
      fdatasyncSync(fd);
      times.push(now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  const p = percentiles(times);
  return { p50Ms: p.p50, p99Ms: p.p99, maxMs: p.max };
}

/** Which broker source this is: NERVEBUS_BENCH_SOURCE, else `git rev-parse HEAD` (read only). */
export function sourceVersion(): string {
  const given = process.env.NERVEBUS_BENCH_SOURCE;
  if (given) return given;
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: REPO,
      encoding: "utf8",
    }).trim();
    return `git ${head} (plus any uncommitted changes in the working tree)`;
  } catch {
    return "unknown (not a git checkout)";
  }
}
