"use strict";

// Which prebuilt binary fits this process: the platform name that both the
// npm/<name>/ packages and the `eio-rs.<name>.node` files are named after.
// binding.js loads by it and scripts/pack.js packs by it, so the two agree.

const { closeSync, openSync, readFileSync, readSync } = require("fs");

/** The C library an x64/arm64 Linux process runs on, detected as napi-rs does. */
function isMusl() {
  if (process.platform !== "linux") return false;
  const fromFile = muslFromLdd();
  if (fromFile !== null) return fromFile;
  const fromReport = muslFromReport();
  if (fromReport !== null) return fromReport;
  return muslFromChildProcess();
}

// glibc's and musl's ldd are shell scripts that name their libc.
function muslFromLdd() {
  try {
    return readFileSync("/usr/bin/ldd", "utf8").includes("musl");
  } catch {
    return null;
  }
}

// Node's diagnostic report names the glibc it runs on, and the shared
// objects it loaded (musl's loader among them on Alpine).
function muslFromReport() {
  if (!process.report || typeof process.report.getReport !== "function") return null;
  let report;
  try {
    process.report.excludeNetwork = true;
    report = process.report.getReport();
  } catch {
    return null;
  }
  if (!report) return null;
  if (report.header && report.header.glibcVersionRuntime) return false;
  if (Array.isArray(report.sharedObjects)) {
    return report.sharedObjects.some((f) => f.includes("libc.musl-") || f.includes("ld-musl-"));
  }
  return null;
}

function muslFromChildProcess() {
  try {
    const out = require("child_process").execSync("ldd --version 2>&1", { encoding: "utf8" });
    return out.includes("musl");
  } catch {
    return false;
  }
}

/**
 * This process's platform name: `linux-x64-gnu`, `linux-arm64-musl`,
 * `darwin-arm64`, `win32-x64-msvc`, ... (napi-rs's names).
 */
function platformName() {
  const { platform, arch } = process;
  if (platform === "linux") return `linux-${arch}-${isMusl() ? "musl" : "gnu"}`;
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** napi-rs's platform name of a Rust target triple: `x86_64-unknown-linux-gnu` → `linux-x64-gnu`. */
function platformOfTriple(triple) {
  const [arch, , sys, abi] = triple.split("-");
  const cpu = { x86_64: "x64", aarch64: "arm64", i686: "ia32", armv7: "arm" }[arch] || arch;
  if (sys === "linux") return `linux-${cpu}-${abi}`;
  if (sys === "darwin") return `darwin-${cpu}`;
  if (sys === "windows") return `win32-${cpu}-${abi}`;
  return `${sys}-${cpu}`;
}

/**
 * The platforms eio-rs ships binaries for: the `napi.targets` of its
 * package.json, the one list that the platform packages, the published
 * `optionalDependencies` and the release workflow follow.
 */
function prebuiltPlatforms(pkg) {
  return pkg.napi.targets.map(platformOfTriple);
}

/**
 * The CPU a native binary was built for, read from its header (ELF, Mach-O
 * or PE), as a `process.arch` name; null when the file is none of those.
 * The loader's own error for a foreign binary can be as vague as "No such
 * file or directory", so binding.js says this instead.
 */
function binaryArch(file) {
  let head;
  try {
    const fd = openSync(file, "r");
    head = Buffer.alloc(4096);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
  } catch {
    return null;
  }
  const names = (map, key) => map[key] || `unknown (${key})`;
  if (head.readUInt32BE(0) === 0x7f454c46) {
    const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
    return names({ 3: "ia32", 40: "arm", 62: "x64", 183: "arm64" }, machine);
  }
  if (head.readUInt32LE(0) === 0xfeedfacf) {
    return names({ 0x01000007: "x64", 0x0100000c: "arm64" }, head.readUInt32LE(4));
  }
  if (head.toString("latin1", 0, 2) === "MZ") {
    const pe = head.readUInt32LE(0x3c);
    if (pe + 6 > head.length) return null;
    return names({ 0x14c: "ia32", 0x8664: "x64", 0xaa64: "arm64" }, head.readUInt16LE(pe + 4));
  }
  return null;
}

module.exports = { platformName, platformOfTriple, prebuiltPlatforms, isMusl, binaryArch };
