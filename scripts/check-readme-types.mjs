#!/usr/bin/env node
// Type-checks every TypeScript block (```ts / ```typescript) of the READMEs and docs under `strict`:
// a block that stops compiling when an API changes is caught here, not by the next reader.
//
// Each block is its own ES module (top-level await allowed), compiled against the packages' sources
// (the root tsconfig's `paths`), with Node's types. A block that is a fragment — it uses a `request`
// or a `server` it does not create — says what it assumes in an HTML comment right above it, which
// the reader does not see and the checker puts in front of the block:
//
//     <!-- readme-types: declare const request: { userId: string }; -->
//
// Usage: node scripts/check-readme-types.mjs [files…]   (default: README.md, packages/*/README.md,
// docs/**/*.md, packages/*/docs/**/*.md). Exits 1 listing each error at its README line.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'node_modules', '.cache', 'readme-types');

function markdownFiles() {
  const files = [join(root, 'README.md')];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  for (const name of readdirSync(join(root, 'packages'))) {
    const readme = join(root, 'packages', name, 'README.md');
    if (existsSync(readme)) files.push(readme);
    walk(join(root, 'packages', name, 'docs'));
  }
  return files;
}

/** The TypeScript blocks of a Markdown file: code, the line it starts on, and its declared context. */
function blocksOf(file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    // The context comment: the nearest non-blank line above, possibly spanning several lines.
    let prelude = '';
    let j = i - 1;
    while (j >= 0 && lines[j].trim() === '') j--;
    if (j >= 0 && lines[j].trim().endsWith('-->')) {
      let k = j;
      while (k >= 0 && !lines[k].includes('<!--')) k--;
      const comment = lines.slice(k, j + 1).join('\n');
      const match = /<!--\s*readme-types:([\s\S]*?)-->/.exec(comment);
      if (match) prelude = match[1].trim();
    }
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    blocks.push({ start, code: lines.slice(start, end).join('\n'), prelude });
    i = end;
  }
  return blocks;
}

const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => join(process.cwd(), f)) : markdownFiles();
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

/** Generated file → { markdown file, line offset }: errors are reported at the README's own line. */
const origins = new Map();
let count = 0;
for (const file of files) {
  for (const block of blocksOf(file)) {
    const name = `${relative(root, file).replace(/[^A-Za-z0-9]+/g, '_')}_L${block.start + 1}.ts`;
    const prelude = block.prelude === '' ? [] : block.prelude.split('\n');
    writeFileSync(join(out, name), [...prelude, block.code, 'export {};', ''].join('\n'));
    // Generated line L is README line firstLine + (L - preludeLines - 1).
    origins.set(name, { file: relative(root, file), firstLine: block.start + 1, preludeLines: prelude.length });
    count++;
  }
}

const base = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
const packageNames = readdirSync(join(root, 'packages'));
// Type packages first: `express` itself (no types) must not win over `@types/express`.
const packageModules = [
  ...packageNames.map((name) => `packages/${name}/node_modules/@types/*`),
  ...packageNames.map((name) => `packages/${name}/node_modules/*`),
];
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({
    extends: join(root, 'tsconfig.base.json'),
    compilerOptions: {
      noEmit: true,
      strict: true,
      types: ['node'],
      typeRoots: [join(root, 'node_modules/@types')],
      baseUrl: root,
      // The packages' sources, then any package's dependencies (express, fastify, ioredis, mysql2 …).
      paths: { ...base.compilerOptions.paths, '*': ['node_modules/@types/*', 'node_modules/*', ...packageModules] },
      // Blocks show usage, not finished programs: a name declared for the reader is not an error.
      noUnusedLocals: false,
    },
    include: ['*.ts'],
  }),
);

let output = '';
let failed = false;
try {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', out, '--pretty', 'false'], { encoding: 'utf8', stdio: 'pipe' });
} catch (error) {
  failed = true;
  output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
}

const lines = output.split('\n').filter((line) => line.trim() !== '');
let reported = 0;
for (const line of lines) {
  const match = /^(?:.*[\\/])?([^\\/(]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(line);
  const origin = match && origins.get(match[1]);
  if (!origin) {
    console.error(line);
    reported++;
    continue;
  }
  const generatedLine = Number(match[2]);
  const where =
    generatedLine <= origin.preludeLines
      ? `${origin.file}:${origin.firstLine - 1} (the readme-types comment above the block)`
      : `${origin.file}:${origin.firstLine + generatedLine - origin.preludeLines - 1}`;
  console.error(`${where}:${match[3]}: ${match[4]}`);
  reported++;
}
if (failed) {
  console.error(`\n${reported} error(s) in the TypeScript blocks of the docs (${count} blocks checked).`);
  process.exit(1);
}
console.log(`check-readme-types: ${count} TypeScript blocks in ${files.length} files compile under strict.`);
