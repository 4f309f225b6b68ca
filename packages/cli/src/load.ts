/**
 * Reading a config file: JSON with errors that give the file, line and column (a bare "Unexpected
 * token at position 812" is no help in a 200-line file), then `validateConfig` with relative paths
 * resolved against the file's directory — so `fulcrum --config /etc/fulcrum/fulcrum.json` finds
 * `certs/a.pem` next to the file, whatever the working directory of the service manager.
 *
 * JSON only: it needs no dependency, every config tool emits it (consul-template, jsonnet, jq), and
 * the JSON Schema in `schema/fulcrum.schema.json` gives editors completion and checks.
 */
import { ErrorCodes, FulcrumError } from '@fulcrum/core';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { validateConfigAsync, type FulcrumConfig, type ValidateAsyncOptions } from './config';

/** A config file that could not be read or parsed (validation errors are `InvalidOptionError`s). */
export class ConfigFileError extends FulcrumError {
  readonly code = ErrorCodes.CONFIG_FILE;
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'ConfigFileError';
    this.file = file;
  }
}

/** Parse JSON text; a syntax error becomes a `ConfigFileError` naming `file:line:column`. */
export function parseConfigText(text: string, file: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message);
    if (at === null) throw new ConfigFileError(file, `invalid JSON: ${message}`, { cause: error });
    const offset = Number(at[1]);
    const before = text.slice(0, offset).split('\n');
    const line = before.length;
    const column = before[before.length - 1]!.length + 1;
    throw new ConfigFileError(`${file}:${line}:${column}`, `invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`, { cause: error });
  }
}

/**
 * Read, parse and validate a config file (`validateConfigAsync`: the files it names are read
 * asynchronously, regular files only, and replication's packages must be installed). Relative paths
 * in it resolve against its directory.
 */
export async function loadConfig(file: string, options: Omit<ValidateAsyncOptions, 'baseDir'> = {}): Promise<FulcrumConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(file, `cannot read the config file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error });
  }
  return validateConfigAsync(parseConfigText(text, file), { ...options, baseDir: dirname(path) });
}
