/** Characters of a pattern: those of names (src/core validateName) plus the two wildcards. */
const PATTERN_CHARS = /^[A-Za-z0-9._*?-]+$/;

/**
 * A pattern of topic or subscription names in a policy: `*` stands for any run of characters
 * (none included), `?` for exactly one; every other character is itself. Names are compared
 * exactly (case-sensitive), as the stores compare them (DESIGN §3c).
 */
export class NamePattern {
  readonly #regex: RegExp;

  private constructor(
    /** The pattern as written. */
    readonly source: string,
  ) {
    let body = "";
    // A run of `*` means what one does; collapsed, it costs the regex one `.*` instead of several.
    for (const c of source.replace(/\*+/g, "*"))
      body += c === "*" ? ".*" : c === "?" ? "." : c === "." ? "\\." : c;
    this.#regex = new RegExp(`^${body}$`);
  }

  /** The pattern, or a problem naming the bad character. */
  static parse(source: string): NamePattern | { problem: string } {
    if (source.length === 0 || source.length > 256) return { problem: "must be 1 to 256 characters" };
    if (!PATTERN_CHARS.test(source)) {
      const bad = [...source].find((c) => !PATTERN_CHARS.test(c));
      return {
        problem: `contains ${JSON.stringify(bad)}; allowed are A-Z a-z 0-9 . _ - and the wildcards * ?`,
      };
    }
    return new NamePattern(source);
  }

  /** Whether the pattern covers every name (it is `*`). */
  get matchesEverything(): boolean {
    return this.source === "*";
  }

  /** Whether `name` is one of the names the pattern stands for. */
  matches(name: string): boolean {
    return this.#regex.test(name);
  }
}
