import { readFileSync } from "node:fs";

/**
 * The first ```lang code block after the line `heading` in a README: the text a user copies.
 * Throws naming the README, heading and language when there is none, so a renamed section
 * fails the test that relies on it instead of testing something else.
 */
export function codeBlock(readmePath: string, heading: string, lang: string): string {
  const readme = readFileSync(readmePath, "utf8");
  const at = readme.search(new RegExp(`^${heading.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  if (at < 0) throw new Error(`${readmePath} has no heading "${heading}"`);
  const block = new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "m").exec(readme.slice(at));
  if (!block?.[1]) throw new Error(`${readmePath} has no \`\`\`${lang} block after "${heading}"`);
  return block[1];
}
