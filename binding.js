"use strict";

// Loads the native addon: a local build first (`npm install` in a clone
// builds it next to this file), then the prebuilt package for this platform.

const { existsSync, readFileSync } = require("fs");
const { join } = require("path");

function isMusl() {
  if (process.platform !== "linux") return false;
  try {
    return readFileSync("/usr/bin/ldd", "utf8").includes("musl");
  } catch {
    const report = process.report && process.report.getReport();
    return !(report && report.header && report.header.glibcVersionRuntime);
  }
}

function triple() {
  const { platform, arch } = process;
  if (platform === "linux") return `linux-${arch}-${isMusl() ? "musl" : "gnu"}`;
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function load() {
  const name = triple();
  const local = join(__dirname, `eio-rs.${name}.node`);
  if (existsSync(local)) return require(local);
  try {
    return require(`eio-rs-${name}`);
  } catch (err) {
    const e = new Error(
      `eio-rs: no native binary for ${name}. Build it with \`npm run build\` ` +
        `(needs a Rust toolchain), or install the package eio-rs-${name}.`,
    );
    e.code = "ERR_EIO_NO_BINARY";
    e.cause = err;
    throw e;
  }
}

module.exports = load();
