import { readdirSync, readFileSync } from "node:fs";

/**
 * How busy the machine was during a phase, and how much of that was someone else: the suite's
 * own processes (this one, its brokers, MariaDB: every descendant) against the whole machine
 * (/proc/stat). Other work on a 2-CPU box distorts every figure, so the report shows it.
 */

interface Snapshot {
  readonly at: number;
  /** Machine-wide busy jiffies (user, nice, system, irq, softirq, steal). */
  readonly busy: number;
  /** Jiffies of this process (incl. reaped children) and its live descendants. */
  readonly own: number;
}

export interface CpuUse {
  readonly seconds: number;
  /** CPU-seconds used by the suite's processes. */
  readonly ownCpuSec: number;
  /** CPU-seconds used by everything else on the machine. */
  readonly otherCpuSec: number;
  /** otherCpuSec / seconds: how many CPUs other work kept busy on average. */
  readonly otherCpus: number;
}

const HZ = 100; // USER_HZ on Linux

function procStat(pid: number | "self"): { ppid: number; jiffies: number; children: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // After the comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    return {
      ppid: Number(f[1]),
      jiffies: Number(f[11]) + Number(f[12]),
      children: Number(f[13]) + Number(f[14]),
    };
  } catch {
    return undefined;
  }
}

function snapshot(): Snapshot {
  let busy = 0;
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + (cpu[7] ?? 0);
  } catch {
    // not Linux
  }
  const parents = new Map<number, { ppid: number; jiffies: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) parents.set(Number(name), s);
  }
  const self = process.pid;
  const selfStat = procStat("self");
  let own = selfStat ? selfStat.jiffies + selfStat.children : 0;
  for (const [pid, s] of parents) {
    if (pid === self) continue;
    // A descendant of this process?
    let p = s.ppid;
    for (let depth = 0; depth < 10 && p > 1; depth++) {
      if (p === self) {
        own += s.jiffies;
        break;
      }
      p = parents.get(p)?.ppid ?? 0;
    }
  }
  return { at: Date.now(), busy, own };
}

/** Starts measuring; call the returned function to get the use since then. */
export function cpuMeter(): () => CpuUse {
  const start = snapshot();
  return () => {
    const end = snapshot();
    const seconds = (end.at - start.at) / 1000;
    const ownCpuSec = (end.own - start.own) / HZ;
    const otherCpuSec = Math.max(0, (end.busy - start.busy) / HZ - ownCpuSec);
    return { seconds, ownCpuSec, otherCpuSec, otherCpus: seconds > 0 ? otherCpuSec / seconds : 0 };
  };
}

/** CPU-seconds (user + system) a live process has used, or NaN when it is gone. */
export function processCpuSeconds(pid: number): number {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  const s = procStat(pid);
  return s === undefined ? Number.NaN : s.jiffies / HZ;
}

/** The pid of a descendant of this process whose command name is one of `names`. */
export function findDescendant(names: readonly string[]): number | undefined {
  const ppid = new Map<number, number>();
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const s = procStat(pid);
    if (s === undefined) continue;
    ppid.set(pid, s.ppid);
    try {
      if (names.includes(readFileSync(`/proc/${pid}/comm`, "utf8").trim())) found.push(pid);
    } catch {
      // gone
    }
  }
  for (const pid of found) {
    let p = ppid.get(pid);
    for (let depth = 0; depth < 10 && p !== undefined && p > 1; depth++) {
      if (p === process.pid) return pid;
      p = ppid.get(p);
    }
  }
  return undefined;
}

/** CPU microseconds per message of each process, over a window opened by `start()`. */
export class CpuPerMessage {
  #start: number[] | undefined;
  #end: number[] | undefined;

  constructor(readonly pids: Readonly<Record<string, number | undefined>>) {}

  #read(): number[] {
    return Object.values(this.pids).map((pid) => (pid === undefined ? Number.NaN : processCpuSeconds(pid)));
  }

  /** Opens the window (the first call counts). */
  start(): void {
    this.#start ??= this.#read();
  }

  /**
   * Closes the window (the first call counts): call it from a timer at the window's end and
   * again when the work is done, in case the timer was held up behind busy callbacks.
   */
  stop(): void {
    if (this.#start !== undefined) this.#end ??= this.#read();
  }

  /** { broker: µs/msg, … }, NaN for a process that was not measured. */
  perMessage(messages: number): Record<string, number> {
    const out: Record<string, number> = {};
    Object.keys(this.pids).forEach((k, i) => {
      const a = this.#start?.[i] ?? Number.NaN;
      const b = this.#end?.[i] ?? Number.NaN;
      out[k] = messages > 0 ? ((b - a) * 1e6) / messages : Number.NaN;
    });
    return out;
  }
}
