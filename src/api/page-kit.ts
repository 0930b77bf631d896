import { createHash } from "node:crypto";

/**
 * Script shared by the broker's pages (status page, message browser), pasted into each page's
 * one inline script: element building that never parses HTML, the bearer token kept for the
 * tab (typed into an input #token), number formatting. Plain browser JavaScript without backticks, dollar-braces or
 * backslashes, so the pages' template literals pass it through unchanged.
 */
export const PAGE_KIT = `// The token is kept for this tab only, and sent as a header: unlike a cookie, no other site's
// page can make the browser send it.
const TOKEN_KEY = "nervebus.token";

function byId(id) { return document.getElementById(id); }

/** Keeps the token typed into #token for this tab (or forgets it when empty), then calls then(). */
function useToken(then) {
  const input = byId("token");
  const token = input.value.trim();
  input.value = "";
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* storage refused: nothing to keep it in */ }
  then();
}

function authHeaders() {
  let token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (_) { /* storage refused */ }
  return token ? { Authorization: "Bearer " + token } : {};
}

/** Builds an element; strings among the children become text nodes (never parsed as HTML). */
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const k of Object.keys(props)) {
      const v = props[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function fmtInt(n) { return Number(n).toLocaleString("en-US"); }
`;

/** 'sha256-…' of the one inline element `tag` of `page`, for its CSP (throws if there is none). */
function inlineHash(page: string, tag: "script" | "style"): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(page);
  if (m === null) throw new Error(`page has no inline <${tag}>`);
  return `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`;
}

/**
 * A page's Content-Security-Policy: only its own inline script and stylesheet (by hash, so an
 * injected one never runs), requests only to this origin, no frames around it, no forms, no base.
 */
export function pageCsp(page: string): string {
  return [
    "default-src 'none'",
    `script-src ${inlineHash(page, "script")}`,
    `style-src ${inlineHash(page, "style")}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}
