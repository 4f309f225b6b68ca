// @fulcrum/cli's own errors are FulcrumErrors with stable codes.
import * as core from '@fulcrum/core';
import { tmpdir } from 'node:os';
import { ConfigFileError, ConfigPathError, parseConfigText, readConfigFile } from '@fulcrum/cli';
import { describe, expect, it } from 'vitest';

describe("@fulcrum/cli's errors", () => {
  it('throws a ConfigFileError that is a FulcrumError with its code for a config file that is not JSON', () => {
    let thrown: unknown;
    try {
      parseConfigText('{\n  "pools": {\n}', 'fulcrum.json');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigFileError);
    expect(core.isFulcrumError(thrown, core.ErrorCodes.CONFIG_FILE)).toBe(true);
    expect(thrown).toMatchObject({ name: 'ConfigFileError', code: 'FULCRUM_CONFIG_FILE', file: 'fulcrum.json:3:2' });
    expect((thrown as Error).cause).toBeInstanceOf(SyntaxError);
  });

  it('throws a ConfigPathError that is a FulcrumError with its code for a config path that is a directory', async () => {
    const thrown: unknown = await readConfigFile(tmpdir()).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(thrown).toBeInstanceOf(ConfigPathError);
    expect(core.isFulcrumError(thrown, core.ErrorCodes.CONFIG_PATH)).toBe(true);
    expect(thrown).toMatchObject({ name: 'ConfigPathError', code: 'FULCRUM_CONFIG_PATH', file: tmpdir(), reason: 'is a directory, not a regular file' });
  });
});
