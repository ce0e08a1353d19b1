// Prints the gzipped size of the JavaScript index.html loads at start (the build's budget:
// 150 KB) and fails the build above it.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const scripts = [...html.matchAll(/<script[^>]+src="\/?([^"]+\.js)"/g), ...html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="\/?([^"]+\.js)"/g)].map((m) => m[1]);
let raw = 0;
let gz = 0;
for (const s of new Set(scripts)) {
  const b = readFileSync(join(dist, s));
  raw += b.length;
  gz += gzipSync(b, { level: 9 }).length;
}
const kb = (n) => (n / 1024).toFixed(1);
console.log(`console: initial JavaScript ${kb(gz)} KB gzipped (${kb(raw)} KB raw, ${scripts.length} file(s)); budget 150 KB`);
if (gz > 150 * 1024) {
  console.error("console: initial JavaScript over the 150 KB budget");
  process.exit(1);
}
