// Runs the web tests with node's test runner: the unit tests next to the code (src/**/*.test.ts)
// and the browser tests (e2e/*.test.ts, which need a built `corral` binary and Chromium).
// TypeScript is bundled by esbuild into .test-build first (node 20 does not run .ts).
//
//   node scripts/test.mjs [unit|e2e]   (both when no argument)
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const which = process.argv[2] ?? "all";
const out = join(web, ".test-build");

function testFiles(dir) {
  return readdirSync(join(web, dir), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith(".test.ts"))
    .map((d) => join(d.parentPath ?? d.path, d.name));
}

const entries = [...(which === "e2e" ? [] : testFiles("src")), ...(which === "unit" ? [] : testFiles("e2e"))];
rmSync(out, { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: web,
  entryPoints: entries,
  outdir: out,
  outbase: web,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  outExtension: { ".js": ".mjs" },
  logLevel: "warning",
});
const built = entries.map((f) => join(out, f.slice(web.length + 1).replace(/\.ts$/, ".mjs")));
const run = spawnSync(process.execPath, ["--enable-source-maps", "--test", "--test-concurrency=1", ...built], { stdio: "inherit", cwd: web });
process.exit(run.status ?? 1);
