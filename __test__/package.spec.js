"use strict";

// What the published packages promise, checked from the clone: the main
// package ships everything it loads, the platform packages and the main
// package's optionalDependencies agree, and binding.js fails with errors a
// user can act on.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.join(__dirname, "..");
const pkg = require("../package.json");
const { platformName, platformOfTriple } = require("../lib/platform");
const { mainManifest } = require("../scripts/pack");

test("npm pack ships every file the package loads, and declares every package it loads", () => {
  // What requiring the package loads, read from the module graph of a fresh process.
  const graph = JSON.parse(
    execFileSync(
      process.execPath,
      [
        "-e",
        `const root = ${JSON.stringify(root)};
         require(root);
         const own = new Set(), deps = new Set(), seen = new Set();
         const walk = (m) => {
           if (seen.has(m)) return;
           seen.add(m);
           const rel = require("path").relative(root, m.filename);
           if (rel.startsWith("node_modules")) { deps.add(rel.split(require("path").sep)[1]); return; }
           own.add(rel);
           m.children.forEach(walk);
         };
         walk(require.cache[require.resolve(root)]);
         console.log(JSON.stringify({ own: [...own], deps: [...deps] }));`,
      ],
      { encoding: "utf8" },
    ),
  );
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--ignore-scripts", "--json"], {
      cwd: root,
      encoding: "utf8",
    }),
  )[0].files.map((f) => f.path);
  const binary = `${pkg.name}.${platformName()}.node`;
  for (const file of graph.own.filter((f) => f !== binary)) {
    assert.ok(packed.includes(file.split(path.sep).join("/")), `${file} is loaded but not packed`);
  }
  assert.ok(!packed.some((f) => f.endsWith(".node")), "the main package carries no binary");
  assert.ok(packed.includes("LICENSE") && packed.includes("README.md"));
  for (const dep of graph.deps) {
    assert.ok(pkg.dependencies[dep], `${dep} is loaded but is not a dependency`);
  }
});

test("one platform package per napi target, each an exact optionalDependency when packed", () => {
  const dirs = fs.readdirSync(path.join(root, "npm")).sort();
  assert.deepEqual(pkg.napi.targets.map(platformOfTriple).sort(), dirs);
  const expected = Object.fromEntries(dirs.map((d) => [`${pkg.name}-${d}`, pkg.version]));
  assert.deepEqual(mainManifest().optionalDependencies, expected);
  assert.equal(pkg.optionalDependencies, undefined, "listed only once published");
  for (const dir of dirs) {
    const meta = require(`../npm/${dir}/package.json`);
    const [os, cpu, abi] = dir.split("-");
    assert.equal(meta.name, `${pkg.name}-${dir}`);
    assert.equal(meta.version, pkg.version, `npm/${dir} version`);
    assert.equal(meta.main, `${pkg.name}.${dir}.node`);
    assert.deepEqual(meta.files, [meta.main]);
    assert.deepEqual(meta.os, [os]);
    assert.deepEqual(meta.cpu, [cpu]);
    const libc = { gnu: ["glibc"], musl: ["musl"] }[abi];
    assert.deepEqual(meta.libc, libc, `npm/${dir} libc`);
    assert.deepEqual(meta.engines, pkg.engines);
    assert.equal(meta.license, pkg.license);
  }
});

test("the stated Node-API version is the one the binding is built for", () => {
  const cargo = fs.readFileSync(path.join(root, "Cargo.toml"), "utf8");
  const line = cargo.split("\n").find((l) => /^napi\s*=/.test(l));
  assert.match(line, new RegExp(`"napi${pkg.napi.napiVersion}"`));
  assert.ok(process.versions.napi >= pkg.napi.napiVersion);
});

test("the release workflow builds every napi target", () => {
  const workflow = fs.readFileSync(path.join(root, ".github/workflows/release.yml"), "utf8");
  for (const target of pkg.napi.targets) {
    assert.ok(workflow.includes(`target: ${target}`), `release.yml does not build ${target}`);
  }
});

/**
 * A copy of the loader alone (binding.js, lib/platform.js, package.json) in
 * a folder where no platform package can be found, required in a child.
 */
function requireLoneLoader(env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eio-rs-loader-"));
  try {
    fs.mkdirSync(path.join(dir, "lib"));
    for (const f of ["binding.js", "lib/platform.js", "package.json"]) {
      fs.copyFileSync(path.join(root, f), path.join(dir, f));
    }
    const r = spawnSync(
      process.execPath,
      [
        "-e",
        `try { require("./binding.js"); console.log("{}"); }
         catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
      ],
      { cwd: dir, encoding: "utf8", env: { ...process.env, ...env } },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("with no binary, require() says what was tried and how to get one", () => {
  const env = { NAPI_RS_NATIVE_LIBRARY_PATH: "" };
  const { code, message } = requireLoneLoader(env);
  const platform = platformName();
  assert.equal(code, "ERR_EIO_NO_BINARY");
  assert.ok(message.includes(`no native binary for ${platform}`), message);
  assert.ok(message.includes(`${pkg.name}.${platform}.node (no such file)`), message);
  assert.ok(message.includes(`package ${pkg.name}-${platform} (not installed)`), message);
  assert.ok(message.includes("npm run build"), message);
});

test("a corrupt binary gets an error that names the file", () => {
  const file = path.join(os.tmpdir(), `eio-rs-corrupt-${process.pid}.node`);
  fs.writeFileSync(file, "this is not a shared object\n");
  try {
    const { code, message } = requireLoneLoader({ NAPI_RS_NATIVE_LIBRARY_PATH: file });
    assert.equal(code, "ERR_EIO_BAD_BINARY");
    assert.ok(message.includes(file), message);
    assert.ok(message.includes("it is not a native binary"), message);
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test(
  "a binary for another architecture gets an error that names the file",
  { skip: process.platform !== "linux" && "ELF only" },
  () => {
    // The real binary with its ELF machine field changed, as an arm64 build
    // copied onto an x64 host (or the reverse) looks to the loader.
    const built = path.join(root, `${pkg.name}.${platformName()}.node`);
    const bytes = fs.readFileSync(built);
    const EM_X86_64 = 62;
    const EM_AARCH64 = 183;
    const foreign = bytes.readUInt16LE(18) === EM_X86_64 ? EM_AARCH64 : EM_X86_64;
    bytes.writeUInt16LE(foreign, 18);
    const file = path.join(os.tmpdir(), `eio-rs-other-arch-${process.pid}.node`);
    fs.writeFileSync(file, bytes);
    try {
      const { code, message } = requireLoneLoader({ NAPI_RS_NATIVE_LIBRARY_PATH: file });
      assert.equal(code, "ERR_EIO_BAD_BINARY");
      assert.ok(message.includes(file), message);
      const arch = foreign === EM_X86_64 ? "x64" : "arm64";
      assert.ok(message.includes(`built for ${arch}, and this is ${process.arch}`), message);
    } finally {
      fs.rmSync(file, { force: true });
    }
  },
);
