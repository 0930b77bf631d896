import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { Browser, Page } from "playwright-core";

/** Headless Chromium for the page tests (Debian's package). */
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A name that resolves to the broker, as an attacker's DNS would answer after rebinding.
  "--host-resolver-rules=MAP rebound.test 127.0.0.1",
];
export const VIEWPORT = { width: 1280, height: 800 };
/** Why the page tests skip, or false when Chromium is there. */
export const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) to run the status page tests`;

/** A page that records script errors, failed requests to other hosts and console errors. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  const origin = new URL(url).origin;
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("request", (req) => {
    if (!req.url().startsWith(origin)) problems.push(`request to another origin: ${req.url()}`);
  });
  // Anything the Content-Security-Policy blocks (inline style or script, a request) is a problem:
  // the page must work under its own policy.
  page.on("console", (msg) => {
    if (/Content.Security.Policy/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  await page.addInitScript(
    `document.addEventListener("securitypolicyviolation", (e) => console.error("Content-Security-Policy violation: " + e.violatedDirective + " " + e.blockedURI));`,
  );
  const response = await page.goto(url, { waitUntil: "load" });
  assert.match(
    response?.headers()["content-security-policy"] ?? "",
    /script-src 'sha256-/,
    "the page is served with its Content-Security-Policy",
  );
  return { page, problems };
}
