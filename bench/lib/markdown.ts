/** Helpers of the results.md tables, shared by the report's sections. */

/** CPU µs per message, or – when not measured. */
export const us = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(1));

/** The broker, database and load-generator CPU columns of a row. */
export const cpuCols = (c: Record<string, number>) => `${us(c.broker)} | ${us(c.db)} | ${us(c.loadgen)}`;

/**
 * A report section: a blank line, its heading, each paragraph after a blank line, and the head of
 * its table from `columns`, "a | b: | c", where a trailing colon right-aligns a column (as `---:`
 * does in Markdown).
 */
export function section(title: string, columns: string, ...paragraphs: string[]): string[] {
  const cols = columns.split(" | ");
  return [
    "",
    `## ${title}`,
    ...paragraphs.flatMap((p) => ["", p]),
    "",
    `| ${cols.map((c) => c.replace(/:$/, "")).join(" | ")} |`,
    `|${cols.map((c) => (c.endsWith(":") ? "---:" : "---")).join("|")}|`,
  ];
}

/** Error counts by status, or "none". */
export function errorsText(errors: Record<string, number>): string {
  const e = Object.entries(errors);
  return e.length === 0 ? "none" : e.map(([k, v]) => `${k} ×${v}`).join(", ");
}
