/**
 * The one failure specific to files: a file that is there but cannot be trusted — cut short by a
 * replication tool still copying it, zero-filled by an NFS client after a crash, or edited by hand.
 * The store and the replicator never throw it at a caller (such a file reads as "no session" or is
 * skipped); they report it through their `'error'` event or `onError` hook so operators see it.
 * Directory-level failures (the mount is gone, I/O errors) surface as core's
 * `StoreUnavailableError` instead, as for every Fulcrum store whose backing service is down.
 */

import { ErrorCodes, FulcrumError, isFulcrumError } from '@fulcrum/core';

/** Why a file was refused. */
export type CorruptFileReason = 'header' | 'truncated' | 'checksum' | 'id-mismatch' | 'payload';

/** A session file or stick-log record failed its checks and was ignored. */
export class CorruptFileError extends FulcrumError {
  /** Stable code: `'FULCRUM_FS_CORRUPT_FILE'` (core's `ErrorCodes.CORRUPT_FILE`). */
  readonly code = ErrorCodes.CORRUPT_FILE;
  /** The file, relative to the store's or replicator's directory. */
  readonly file: string;
  readonly reason: CorruptFileReason;

  constructor(file: string, reason: CorruptFileReason, detail?: string, options?: { cause?: unknown }) {
    super(`ignored ${file}: ${detail ?? reason}`, options);
    this.name = 'CorruptFileError';
    this.file = file;
    this.reason = reason;
  }
}

/** True for a `CorruptFileError` of any installed copy of this package. */
export function isCorruptFileError(error: unknown): error is CorruptFileError {
  return isFulcrumError(error, ErrorCodes.CORRUPT_FILE);
}
