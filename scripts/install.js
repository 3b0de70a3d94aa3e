"use strict";

// `npm install` hook. In a source checkout (Cargo.toml present) it builds
// the addon from source; an installed package ships prebuilt binaries in
// its platform package and needs nothing.

const { existsSync } = require("fs");
const { join } = require("path");
const { spawnSync } = require("child_process");

const root = join(__dirname, "..");
if (!existsSync(join(root, "Cargo.toml"))) process.exit(0);

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const r = spawnSync(npm, ["run", "build"], { cwd: root, stdio: "inherit" });
process.exit(r.status === null ? 1 : r.status);
