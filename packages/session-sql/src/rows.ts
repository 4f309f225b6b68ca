/** Row shapes the session table gives back, shared by the store's parts. */

/** A session row as mysql2 returns it (numbers may come back as strings, text as a Buffer). */
export interface SessionRow {
  data: string | Buffer;
  version: number | string;
  expires_at: number | string;
}

/** A session row as the store uses it. */
export interface RowRead {
  text: string;
  version: number;
  expiresAt: number;
}

/** What an `UPDATE`, `INSERT` or `DELETE` reports. */
export interface WriteResult {
  affectedRows: number;
}

/** Runs one statement for the store (table ready, retries, deadline) and answers mysql2's result. */
export type RunStatement = (operation: string, sql: string, params: unknown[], options: { idempotent: boolean; read?: boolean }) => Promise<unknown>;

/** A session id as a row gives it back: a Buffer from the `VARBINARY` column, a string from a legacy one. */
export function idText(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}
