import { existsSync, readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Maps a position in compiled dist/…/x.js back to src/…/x.ts through the .js.map tsc writes
 * beside it, so profile summaries name the TypeScript line to change.
 */

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]));

/** Per generated line: segments [generated column, source index, source line] (0-based). */
type Lines = [number, number, number][][];

interface SourceMap {
  readonly sources: string[];
  readonly lines: Lines;
}

function decodeVlq(segment: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const c of segment) {
    const digit = B64_VALUE.get(c);
    if (digit === undefined) break;
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      out.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return out;
}

function parse(mapFile: string): SourceMap {
  const raw = JSON.parse(readFileSync(mapFile, "utf8")) as {
    sources: string[];
    sourceRoot?: string;
    mappings: string;
  };
  const base = resolve(dirname(mapFile), raw.sourceRoot ?? "");
  const sources = raw.sources.map((s) => resolve(base, s));
  const lines: Lines = [];
  let src = 0;
  let srcLine = 0;
  for (const line of raw.mappings.split(";")) {
    let col = 0;
    const segs: [number, number, number][] = [];
    for (const seg of line.split(",")) {
      if (seg === "") continue;
      const v = decodeVlq(seg);
      col += v[0] ?? 0;
      if (v.length >= 4) {
        src += v[1]!;
        srcLine += v[2]!;
        segs.push([col, src, srcLine]);
      }
    }
    lines.push(segs);
  }
  return { sources, lines };
}

const cache = new Map<string, SourceMap | null>();

/**
 * `src/core/topic.ts:123` for a 0-based line and column of a compiled file URL
 * (…/dist/src/core/topic.js), relative to the checkout it was built in (the directory above
 * dist/); undefined when there is no source map.
 */
export function originalPosition(url: string, line: number, column: number): string | undefined {
  if (!url.startsWith("file://") || !url.endsWith(".js")) return undefined;
  const file = fileURLToPath(url);
  const dist = file.lastIndexOf("/dist/");
  if (dist < 0) return undefined;
  const root = file.slice(0, dist);
  let map = cache.get(file);
  if (map === undefined) {
    map = existsSync(`${file}.map`) ? parse(`${file}.map`) : null;
    cache.set(file, map);
  }
  if (map === null) return undefined;
  const segs = map.lines[line];
  if (segs === undefined || segs.length === 0) return undefined;
  let best = segs[0]!;
  for (const seg of segs) if (seg[0] <= column) best = seg;
  const source = map.sources[best[1]];
  return source === undefined ? undefined : `${relative(root, source)}:${best[2] + 1}`;
}
