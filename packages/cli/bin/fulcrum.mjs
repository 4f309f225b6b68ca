#!/usr/bin/env node
// The `fulcrum` command: runs the built @fulcrum/cli (see its README.md).
import { readFileSync } from 'node:fs';
import { runCli } from '../dist/index.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const code = await runCli(process.argv.slice(2), { version });
process.exitCode = code;
// Everything is closed by now; should a handle linger anyway, do not let it keep a stopped proxy alive.
setTimeout(() => process.exit(code), 2000).unref();
