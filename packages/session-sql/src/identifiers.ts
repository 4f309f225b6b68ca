/**
 * SQL identifiers (table names) a user configures. Values always travel as `?` parameters; an
 * identifier cannot, so it is checked against a strict charset and backquoted before it is pasted
 * into a statement. The charset is the intersection of what MySQL and MariaDB accept unquoted
 * (letters, digits, `_`; not starting with a digit) and stays within MySQL's 64-character limit,
 * minus room for the index-name suffixes this package derives from it. Stricter than the servers,
 * on purpose: a name that needs quoting rules to be safe is refused instead of escaped.
 */
import { InvalidOptionError } from '@fulcrum/core';

/** Table names accepted by `SqlStore` and `SqlReplicator`: 1–48 of `[A-Za-z0-9_]`, not starting with a digit. */
export const TABLE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

/** Validates `value` as a table name (throws `InvalidOptionError` naming `path`) and returns it backquoted. */
export function quoteTableName(path: string, value: unknown): string {
  if (typeof value !== 'string' || !TABLE_NAME_PATTERN.test(value)) {
    throw new InvalidOptionError(path, value, 'must be 1–48 characters of A–Z, a–z, 0–9 and "_", not starting with a digit');
  }
  return `\`${value}\``;
}
