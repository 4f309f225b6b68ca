import { ErrorCodes, isFulcrumError } from '@fulcrum/core';
import { CorruptFileError, isCorruptFileError } from '@fulcrum/session-fs';
import { describe, expect, it } from 'vitest';

describe('CorruptFileError', () => {
  it('is a FulcrumError with the stable code FULCRUM_FS_CORRUPT_FILE, its file and reason', () => {
    const error = new CorruptFileError('ab/abcdef.json', 'checksum', 'checksum mismatch');
    expect(isFulcrumError(error, ErrorCodes.CORRUPT_FILE)).toBe(true);
    expect(isCorruptFileError(error)).toBe(true);
    expect(error).toMatchObject({ name: 'CorruptFileError', code: 'FULCRUM_FS_CORRUPT_FILE', file: 'ab/abcdef.json', reason: 'checksum' });
    expect(error.message).toBe('ignored ab/abcdef.json: checksum mismatch');
  });

  it('is recognised across installed copies by its brand and code, and other Fulcrum errors are not', () => {
    const foreign = Object.assign(new Error('ignored x'), { code: 'FULCRUM_FS_CORRUPT_FILE' });
    Object.defineProperty(foreign, Symbol.for('fulcrum.error'), { value: true });
    expect(isCorruptFileError(foreign)).toBe(true);
    expect(isCorruptFileError({ code: 'FULCRUM_FS_CORRUPT_FILE' })).toBe(false);
    expect(isCorruptFileError(Object.assign(new Error('x'), { code: 'FULCRUM_NO_BACKEND', [Symbol.for('fulcrum.error')]: true }))).toBe(false);
  });
});
