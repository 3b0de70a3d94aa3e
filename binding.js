"use strict";

// Loads the native addon. In order:
//   1. the file named by NAPI_RS_NATIVE_LIBRARY_PATH, when set (napi-rs's switch);
//   2. `eio-rs.<platform>.node` next to this file: a source build in a clone
//      (`npm install` builds it there); the published package has none, and a
//      clone's own build must win over any prebuilt package npm fetched;
//   3. the prebuilt package `eio-rs-<platform>`, which npm installs through
//      `optionalDependencies` on the platform it fits.
// The first candidate that exists is loaded; if it does not load (corrupt,
// wrong architecture, too old a Node), the error names that file. When none
// exists, one error says what was tried and how to get a binary.

const { existsSync } = require("fs");
const { join } = require("path");
const { platformName, prebuiltPlatforms, binaryArch } = require("./lib/platform");
const pkg = require("./package.json");

/** Where a candidate binary is, or null when it is not there. */
function locate(candidate) {
  if (candidate.file) return existsSync(candidate.file) ? candidate.file : null;
  try {
    return require.resolve(candidate.package);
  } catch (err) {
    if (err && err.code === "MODULE_NOT_FOUND") return null;
    throw err;
  }
}

function fail(code, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined);
  err.code = code;
  return err;
}

function load() {
  const platform = platformName();
  const candidates = [];
  if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH) {
    candidates.push({ file: process.env.NAPI_RS_NATIVE_LIBRARY_PATH });
  }
  candidates.push({ file: join(__dirname, `${pkg.name}.${platform}.node`) });
  candidates.push({ package: `${pkg.name}-${platform}` });

  for (const candidate of candidates) {
    const file = locate(candidate);
    if (!file) continue;
    try {
      return require(file);
    } catch (err) {
      const arch = binaryArch(file);
      const ffi = /--allow-ffi/.test(err.message);
      const why = ffi
        ? "Deno loads native addons only with --allow-ffi (or -A)"
        : arch === null
          ? "it is not a native binary"
          : arch !== process.arch
            ? `it is built for ${arch}, and this is ${process.arch}`
            : err.message.split("\n")[0];
      const advice = ffi
        ? "run Deno with --allow-ffi"
        : `it must be the ${platform} build for Node-API ${pkg.napi.napiVersion}: ` +
          "reinstall eio-rs, or rebuild it from source with `npm run build`";
      throw fail(
        "ERR_EIO_BAD_BINARY",
        `eio-rs: the native binary ${file} did not load: ${why}; ${advice}.`,
        err,
      );
    }
  }

  const prebuilt = prebuiltPlatforms(pkg);
  const tried = candidates
    .map((c) => (c.file ? `${c.file} (no such file)` : `package ${c.package} (not installed)`))
    .join("; ");
  const hint = prebuilt.includes(platform)
    ? `The package ${pkg.name}-${platform} should have come with eio-rs: install again ` +
      `without --omit=optional / --no-optional, with one package manager for the whole tree`
    : `There is no prebuilt binary for ${platform} (there are for ${prebuilt.join(", ")})`;
  throw fail(
    "ERR_EIO_NO_BINARY",
    `eio-rs: no native binary for ${platform} (Node ${process.versions.node}). ` +
      `Tried: ${tried}. ${hint}. ` +
      `To build from source (needs Rust, https://rustup.rs): in a clone of eio-rs, ` +
      `\`npm install && npm run build\`, then point NAPI_RS_NATIVE_LIBRARY_PATH at the built ` +
      `${pkg.name}.${platform}.node.`,
  );
}

module.exports = load();
