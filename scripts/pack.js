"use strict";

// Makes the npm tarballs a user downloads: the main package `eio-rs` (JS
// only) and one `eio-rs-<platform>` package per binary. The release workflow
// and `npm run pack:local` both make them here, the same way.
//
//   node scripts/pack.js local DIR        build this host's binary (release),
//                                         then pack it and the main package into DIR
//   node scripts/pack.js tarballs SRC DIR pack every `eio-rs.<platform>.node`
//                                         found under SRC, and the main package, into DIR
//
// Each package is packed from a staging copy (npm/<platform>/ with its binary
// beside it; the main package without its scripts), so the tree keeps no
// binaries. Prints the tarball paths.

const { execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { platformName, prebuiltPlatforms } = require("../lib/platform");

const root = path.join(__dirname, "..");
const pkg = require("../package.json");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/** `npm pack` of the package in `dir` into `dest`; returns the tarball's path. */
function npmPack(dir, dest) {
  // --ignore-scripts: packing must not run `prepare` (a source build).
  const out = execFileSync(
    npm,
    ["pack", "--ignore-scripts", "--json", "--pack-destination", dest],
    { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  return path.join(dest, JSON.parse(out)[0].filename);
}

/**
 * Packs `manifest` with `files` (pairs of source path and path in the
 * package) from a staging folder, so the tree is left as it was.
 */
function packStaged(manifest, files, dest) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `${manifest.name}-`));
  try {
    for (const [from, to] of files) {
      fs.mkdirSync(path.dirname(path.join(stage, to)), { recursive: true });
      fs.copyFileSync(from, path.join(stage, to));
    }
    fs.writeFileSync(path.join(stage, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
    return npmPack(stage, dest);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/** Packs the binary `file` as the platform package its name says. */
function packPlatform(file, dest) {
  const match = /^eio-rs\.(.+)\.node$/.exec(path.basename(file));
  const template = match && path.join(root, "npm", match[1]);
  if (!template || !fs.existsSync(template)) {
    throw new Error(`${file}: not a binary of a platform under npm/`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(template, "package.json"), "utf8"));
  if (manifest.version !== pkg.version) {
    throw new Error(`npm/${match[1]} is at ${manifest.version}, eio-rs at ${pkg.version}`);
  }
  const files = [
    [path.join(template, "README.md"), "README.md"],
    [path.join(root, "LICENSE"), "LICENSE"],
    [file, manifest.main],
  ];
  return packStaged(manifest, files, dest);
}

/**
 * The main package's published manifest: no scripts (the clone's `prepare`
 * builds from source; a user's install must run nothing), no
 * devDependencies, and each platform package as an exact-version optional
 * dependency. The clone's package.json does not list those: until they are
 * published, npm could not lock them.
 */
function mainManifest() {
  const { scripts, devDependencies, ...manifest } = pkg;
  manifest.optionalDependencies = Object.fromEntries(
    prebuiltPlatforms(pkg).map((p) => [`${pkg.name}-${p}`, pkg.version]),
  );
  return manifest;
}

/** Packs the main package: what `files` names, with {@link mainManifest}. */
function packMain(dest) {
  const listed = JSON.parse(
    execFileSync(npm, ["pack", "--dry-run", "--ignore-scripts", "--json"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  )[0].files.map((f) => f.path);
  const files = listed.filter((f) => f !== "package.json").map((f) => [path.join(root, f), f]);
  return packStaged(mainManifest(), files, dest);
}

/** Every `eio-rs.<platform>.node` under `dir` (the workflow's downloaded artifacts). */
function findBinaries(dir) {
  return fs
    .readdirSync(dir, { recursive: true })
    .filter((f) => /^eio-rs\..+\.node$/.test(path.basename(f)))
    .map((f) => path.join(dir, f));
}

function main([command, ...args]) {
  const usage = "usage: node scripts/pack.js local DIR | tarballs SRC DIR";
  let binaries;
  let dest;
  if (command === "local" && args.length === 1) {
    // The build talks on stderr, so stdout is only the tarball paths.
    execFileSync(npm, ["run", "build"], {
      cwd: root,
      stdio: ["ignore", process.stderr, "inherit"],
    });
    binaries = [path.join(root, `eio-rs.${platformName()}.node`)];
    dest = args[0];
  } else if (command === "tarballs" && args.length === 2) {
    binaries = findBinaries(path.resolve(args[0]));
    if (binaries.length === 0) throw new Error(`no eio-rs.<platform>.node under ${args[0]}`);
    dest = args[1];
  } else {
    throw new Error(usage);
  }
  dest = path.resolve(dest);
  fs.mkdirSync(dest, { recursive: true });
  const tarballs = binaries.map((file) => packPlatform(file, dest));
  tarballs.push(packMain(dest));
  for (const t of tarballs) console.log(t);
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`pack: ${err.message}`);
    process.exit(1);
  }
}

module.exports = { mainManifest, packPlatform, packMain, findBinaries };
