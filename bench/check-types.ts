import type { StoreKind } from "./store-kind.js";

/** The shapes of the suite's checks (their own file so that suite-results.ts need not import checks.ts). */

/** One figure over the runs. `values` has a value per run, null where that run lacks it. */
export interface FigureSummary {
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** Sample standard deviation / mean (0 with one run). */
  readonly relStdev: number;
  readonly values: (number | null)[];
}

/** Which value of a figure over the runs a check reads: the mean, or the worst run of a bound. */
export type Statistic = "mean" | "highest run" | "lowest run";

/** One target of the issue, or a figure it asks to see without a target (`pass` null). */
export interface Check {
  readonly store: StoreKind;
  /** What is asked, e.g. "publish ≥ 0.75 × raw per-row INSERT (100 B, 4 shards)". */
  readonly target: string;
  /** The key of `figures` this check reads. */
  readonly figure: string;
  /**
   * The figure over the runs, null when not measured: its mean, or for a bound that must hold
   * in every run (memory, goodput, lost messages) its worst run (`statistic`).
   */
  readonly measured: number | null;
  readonly statistic: Statistic;
  readonly min: number | null;
  readonly max: number | null;
  readonly relStdev: number | null;
  /** Runs that measured it. */
  readonly runs: number;
  /** Pass or fail on `measured`; null when there is no target or nothing was measured. */
  readonly pass: boolean | null;
  readonly detail: string;
}
