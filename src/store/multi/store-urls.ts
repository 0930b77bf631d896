import { NerveBusError } from "../../core/index.js";

/** One MySQL database of a multi-host `--store`: its URL and the key placement rows name it by. */
export interface HostUrl {
  readonly url: string;
  /** `HOST:PORT/DATABASE`: what the placement catalog and `move-topic --to` name it by (no credentials). */
  readonly key: string;
}

/** The URL with its password replaced by `***`, for errors and logs. */
export function maskUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/g, "//$1:***@");
}

/**
 * Commas that start another URL (one followed by `SCHEME:`): a comma inside a password (a
 * single-database URL that worked before) does not split it.
 */
const URL_SEPARATOR = /,\s*(?=[A-Za-z][A-Za-z0-9+.-]*:)/;

/** Whether a `--store` value names several databases. */
export function isMultiHost(value: string): boolean {
  return URL_SEPARATOR.test(value);
}

/**
 * Splits a `--store` value naming several MySQL databases (comma-separated) and checks each
 * before anything connects. Throws INVALID_ARGUMENT naming the bad URL (password masked): not
 * mysql://, no database, not a URL, or a database named twice.
 */
export function parseHostUrls(value: string): HostUrl[] {
  const parts = value.split(URL_SEPARATOR).map((p) => p.trim());
  const hosts: HostUrl[] = [];
  for (const [i, url] of parts.entries()) {
    const bad = (problem: string) =>
      new NerveBusError(
        "invalid_argument",
        `store: URL ${i + 1} of ${parts.length}, ${JSON.stringify(maskUrl(url))}, ${problem}; several databases are given as mysql://USER:PASS@HOST:PORT/DB,mysql://…`,
      );
    if (!url.startsWith("mysql://"))
      throw bad(url.startsWith("sqlite:") ? "is SQLite, which holds one database only" : "is not mysql://");
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw bad("is not a valid URL");
    }
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
    if (database === "" || database.includes("/")) throw bad("names no database (…/DB)");
    const key = `${parsed.hostname}:${parsed.port === "" ? 3306 : Number(parsed.port)}/${database}`;
    if (hosts.some((h) => h.key === key)) throw bad(`names ${key} a second time`);
    hosts.push({ url, key });
  }
  return hosts;
}
