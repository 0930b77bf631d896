import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker } from "../support/broker.js";
import { codeBlock } from "./readme-blocks.js";

// Each client used as its README's Install section says, from a project outside the
// repository, with the README's own examples: the artifacts that scripts/build-artifacts.sh
// makes (the build CI runs) are installed into new projects under the system temp dir and the
// programs run against one real broker. Registries (Go proxy, PyPI, npm) are the only network.

const execFileAsync = promisify(execFile);
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const artifacts = join(repo, "dist", "artifacts");
const version = readFileSync(join(repo, "VERSION"), "utf8").trim();
const goModule = "github.com/nervebus/nervebus/clients/go";
const rootPackage = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
};

/** VERSION as Python spells it (PEP 440 normal form: 0.2.0-rc.1 is 0.2.0rc1). */
const pyVersion = version.replace(/-(alpha|beta|rc)\.(\d+)$/, (_, kind: string, n: string) => {
  return `${kind === "rc" ? "rc" : kind[0]}${n}`;
});

let bus: NerveBus;
const scratch: string[] = [];

/** A new empty directory outside the repository, removed after the tests. */
function project(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `nb-pkg-${name}-`));
  scratch.push(dir);
  return dir;
}

/** Runs a command to completion; a failure shows its output. */
async function run(
  cmd: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 180_000,
      maxBuffer: 64 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(" ")} (in ${options.cwd}) failed: ${e.message}\n${e.stdout}\n${e.stderr}`,
    );
  }
}

/**
 * Checks a quickstart's output: `count` "published … seq N" lines and "received … seq N" lines
 * for the same seqs. With `fresh`, the topic was new, so the seqs are 1…count: a quickstart
 * sharing another's topic would have found the other's messages before its own.
 */
function assertRoundTrip(stdout: string, count: number, fresh: boolean): void {
  const lines = stdout.split("\n");
  const seqs = (prefix: string) =>
    lines
      .filter((l) => l.startsWith(prefix))
      .map((l) => Number(/seq[ =](\d+)/.exec(l)?.[1]))
      .sort((a, b) => a - b);
  const published = seqs("published");
  assert.equal(published.length, count, `published lines in:\n${stdout}`);
  assert.deepEqual(seqs("received"), published, `received what was published:\n${stdout}`);
  if (fresh) {
    assert.deepEqual(
      published,
      Array.from({ length: count }, (_, i) => i + 1),
      `a topic of its own:\n${stdout}`,
    );
  }
}

before(async () => {
  // The same command CI and releases use; it empties dist/artifacts first.
  await run("bash", [join(repo, "scripts", "build-artifacts.sh")], { cwd: repo, timeoutMs: 300_000 });
  bus = await startBroker(`sqlite:${join(project("broker"), "nb.db")}`);
});

after(async () => {
  await bus?.stop();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

test("dist/artifacts holds the wheel, sdist, npm tarball and Go module of VERSION, with checksums", () => {
  const files = readdirSync(artifacts).sort();
  assert.deepEqual(files, [
    "SHA256SUMS",
    "go",
    `nervebus-${pyVersion}-py3-none-any.whl`,
    `nervebus-${pyVersion}.tar.gz`,
    `nervebus-client-${version}.tgz`,
  ]);
  const proxyDir = join(artifacts, "go", goModule, "@v");
  assert.deepEqual(readdirSync(proxyDir).sort(), [
    "list",
    `v${version}.info`,
    `v${version}.mod`,
    `v${version}.zip`,
  ]);
  const sums = readFileSync(join(artifacts, "SHA256SUMS"), "utf8");
  for (const f of files.filter((f) => f !== "SHA256SUMS" && f !== "go"))
    assert.match(sums, new RegExp(` \\./${f}$`, "m"));
});

test("Go: a new module with a replace directive runs the README's program", async () => {
  const dir = project("go");
  const env = { ...process.env, GOWORK: "off", NERVEBUS_ADDR: bus.address };
  writeFileSync(join(dir, "main.go"), codeBlock(join(repo, "clients/go/README.md"), "## Quickstart", "go"));
  // The README's Install steps.
  await run("go", ["mod", "init", "example.com/quickstart"], { cwd: dir, env });
  await run("go", ["mod", "edit", `-replace=${goModule}=${join(repo, "clients/go")}`], { cwd: dir, env });
  await run("go", ["mod", "tidy"], { cwd: dir, env });
  assertRoundTrip(await run("go", ["run", "."], { cwd: dir, env, timeoutMs: 120_000 }), 3, true);
});

test("Go: the module zip installs through a file proxy as a published version would", async () => {
  const dir = project("go-zip");
  // A module cache of its own, so the test never leaves this unpublished version in the user's
  // cache and always reads the zip just built; the user's cache still serves the dependencies
  // (its download folder is a proxy too), then the usual proxy.
  const gomodcache = (await run("go", ["env", "GOMODCACHE"], { cwd: dir })).trim();
  const goproxy = (await run("go", ["env", "GOPROXY"], { cwd: dir })).trim();
  const env = {
    ...process.env,
    GOWORK: "off",
    GOMODCACHE: join(project("go-modcache"), "mod"),
    GOFLAGS: `${process.env.GOFLAGS ?? ""} -modcacherw`.trim(),
    GOPROXY: `file://${join(artifacts, "go")},file://${join(gomodcache, "cache", "download")},${goproxy}`,
    GONOSUMDB: "github.com/nervebus/nervebus",
    NERVEBUS_ADDR: bus.address,
  };
  writeFileSync(join(dir, "main.go"), codeBlock(join(repo, "clients/go/README.md"), "## Quickstart", "go"));
  await run("go", ["mod", "init", "example.com/quickstart"], { cwd: dir, env });
  await run("go", ["get", `${goModule}@v${version}`], { cwd: dir, env });
  await run("go", ["mod", "tidy"], { cwd: dir, env });
  assert.match(
    readFileSync(join(dir, "go.mod"), "utf8"),
    new RegExp(`${goModule} v${version.replace(/\./g, "\\.")}\\n`),
  );
  assertRoundTrip(await run("go", ["run", "."], { cwd: dir, env, timeoutMs: 120_000 }), 3, false);
});

test("Python: the wheel installs into a new virtual environment and runs the README's program", async () => {
  const dir = project("python");
  const venv = join(dir, ".venv");
  // The interpreter the client's own venv was made with (Python 3.11; scripts/setup.sh finds it).
  await run(join(repo, "clients/python/.venv/bin/python"), ["-m", "venv", venv], { cwd: dir });
  const wheel = readdirSync(artifacts).find((f) => f.endsWith("-py3-none-any.whl"));
  assert.ok(wheel);
  await run(join(venv, "bin/pip"), ["install", "--disable-pip-version-check", "-q", join(artifacts, wheel)], {
    cwd: dir,
    timeoutMs: 300_000,
  });
  const env: NodeJS.ProcessEnv = { ...process.env, NERVEBUS_ADDRESS: bus.address };
  delete env.PYTHONPATH;
  const where = await run(
    join(venv, "bin/python"),
    [
      "-c",
      "import importlib.metadata, nervebus\n" +
        "print(nervebus.__version__, importlib.metadata.version('nervebus'))\nprint(nervebus.__file__)",
    ],
    { cwd: dir, env },
  );
  const [versions, file] = where.trim().split("\n");
  assert.equal(versions, `${version} ${pyVersion}`, "nervebus.__version__ and the installed distribution's");
  assert.ok(file?.startsWith(venv), `nervebus is imported from the venv, not the checkout: ${file}`);

  writeFileSync(
    join(dir, "quickstart.py"),
    codeBlock(join(repo, "clients/python/README.md"), "## Quickstart", "python"),
  );
  assertRoundTrip(
    await run(join(venv, "bin/python"), ["quickstart.py"], { cwd: dir, env, timeoutMs: 60_000 }),
    3,
    true,
  );

  // The wheel was built from the sdist (python -m build does that), so the sdist is complete;
  // here only that it carries the sources and the metadata.
  const sdist = readdirSync(artifacts).find((f) => f.endsWith(".tar.gz"));
  assert.ok(sdist);
  const members = await run("tar", ["tzf", join(artifacts, sdist)], { cwd: dir });
  for (const m of [
    "pyproject.toml",
    "PKG-INFO",
    "src/nervebus/__init__.py",
    "src/nervebus/py.typed",
    "src/nervebus/gen/nervebus/v1/publisher_pb2.py",
  ]) {
    assert.match(members, new RegExp(`^nervebus-[^/]+/${m.replace(/\./g, "\\.")}$`, "m"), `sdist holds ${m}`);
  }
});

/**
 * A new npm project of the given module type with the packed @nervebus/client installed as the
 * README says; TypeScript and Node's types at the versions the repository itself pins.
 */
async function npmProject(name: string, type: "module" | "commonjs"): Promise<string> {
  const dir = project(name);
  const tarball = readdirSync(artifacts).find((f) => f.startsWith("nervebus-client-") && f.endsWith(".tgz"));
  assert.ok(tarball);
  const npm = (args: string[]) =>
    run("npm", [...args, "--no-audit", "--no-fund"], { cwd: dir, timeoutMs: 300_000 });
  await run("npm", ["init", "-y"], { cwd: dir });
  await run("npm", ["pkg", "set", `type=${type}`], { cwd: dir });
  await npm(["install", join(artifacts, tarball)]);
  const dev = rootPackage.devDependencies;
  await npm(["install", "--save-dev", `typescript@${dev.typescript}`, `@types/node@${dev["@types/node"]}`]);
  return dir;
}

/** Compiles the project with its own tsc (types must resolve: strict, no skipLibCheck) and runs `main`. */
async function compileAndRun(dir: string, main: string): Promise<string> {
  await run(join(dir, "node_modules/.bin/tsc"), ["-p", "."], { cwd: dir });
  return run(process.execPath, [main], {
    cwd: dir,
    env: { ...process.env, NERVEBUS_ADDRESS: bus.address },
    timeoutMs: 60_000,
  });
}

test("TypeScript: the npm tarball in a NodeNext ES module project runs the README's quickstart", async () => {
  const readme = join(repo, "clients/ts/README.md");
  const dir = await npmProject("ts-esm", "module");
  writeFileSync(join(dir, "tsconfig.json"), codeBlock(readme, "## Install", "json"));
  writeFileSync(join(dir, "quickstart.ts"), codeBlock(readme, "## Quickstart", "ts"));
  assertRoundTrip(await compileAndRun(dir, "quickstart.js"), 3, true);
});

test("TypeScript: the npm tarball in a CommonJS project, compiled as CommonJS and as NodeNext", async () => {
  const readme = join(repo, "clients/ts/README.md");
  const dir = await npmProject("ts-cjs", "commonjs");
  const tsconfig = codeBlock(readme, "### CommonJS", "json");
  writeFileSync(join(dir, "main.ts"), codeBlock(readme, "### CommonJS", "ts"));
  const nodeNext = tsconfig.replace(/"module": "CommonJS"/, '"module": "NodeNext"');
  assert.notEqual(nodeNext, tsconfig, 'the README\'s CommonJS tsconfig has "module": "CommonJS"');
  // The first run finds a new topic; the second one the subscription the first made.
  for (const [i, config] of [tsconfig, nodeNext].entries()) {
    writeFileSync(join(dir, "tsconfig.json"), config);
    rmSync(join(dir, "main.js"), { force: true });
    const stdout = await compileAndRun(dir, "main.js");
    const js = readFileSync(join(dir, "main.js"), "utf8");
    assert.match(js, /require\("@nervebus\/client"\)/, `compiled to require():\n${config}`);
    assertRoundTrip(stdout, 1, i === 0);
  }
});
