/**
 * The tables, as `CREATE TABLE IF NOT EXISTS` statements. Choices that matter:
 * - A primary key on every table: Galera replicates row events by key and documents tables without
 *   one as unsupported (deletes and certification misbehave).
 * - Session ids as `VARBINARY(3072)`: any id express-session can make (core's rule: up to 1024
 *   UTF-16 code units, at most 3072 UTF-8 bytes — InnoDB's longest key), compared byte for byte.
 *   A character column would merge ids: a case-insensitive collation makes `abc` and `ABC` one
 *   session, a PAD SPACE one makes `a` and `a `, and a charset that cannot hold a character stores
 *   `?` in its place. Tables of earlier versions (`VARCHAR(256) CHARACTER SET ascii COLLATE
 *   ascii_bin`) keep working for the ids that column holds exactly (`legacyIdColumnHolds`).
 * - Expiry as epoch milliseconds in a BIGINT, compared with the application's clock: sessions can
 *   live less than a second (tests, one-time tokens), and one clock decides expiry everywhere
 *   instead of each database node's.
 * - An index on expiry, so that reads filtering expired rows and the cleanup's `LIMIT` batches are
 *   range scans, never table scans.
 * - Stick entries keep `updated_at`/`expires_at` as DOUBLE (the table's stamps are JS numbers and
 *   must travel unchanged) and `changed_us`, the database's own microsecond time of the last
 *   change, which pollers follow through its index.
 */

export function sessionTableDdl(table: string, indexPrefix: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  \`id\` VARBINARY(3072) NOT NULL,
  \`data\` MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  \`expires_at\` BIGINT NOT NULL,
  \`version\` BIGINT UNSIGNED NOT NULL DEFAULT 1,
  PRIMARY KEY (\`id\`),
  KEY \`${indexPrefix}_expires_at\` (\`expires_at\`)
) ENGINE=InnoDB`;
}

export function stickTableDdl(table: string, indexPrefix: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  \`k\` VARBINARY(3072) NOT NULL,
  \`value\` MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  \`deleted\` TINYINT NOT NULL DEFAULT 0,
  \`updated_at\` DOUBLE NOT NULL,
  \`expires_at\` DOUBLE NOT NULL,
  \`origin\` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  \`changed_us\` BIGINT NOT NULL,
  PRIMARY KEY (\`k\`),
  KEY \`${indexPrefix}_changed_us\` (\`changed_us\`),
  KEY \`${indexPrefix}_expires_at\` (\`expires_at\`)
) ENGINE=InnoDB`;
}

/** The statement that reads the session table's id column type (`VARBINARY`, or the legacy ascii `VARCHAR`). */
export const ID_COLUMN_QUERY =
  "SELECT DATA_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'id'";

/** What to run to let a table of an earlier version take every id (it rewrites the table: plan it). */
export function idColumnMigration(table: string): string {
  return `ALTER TABLE ${table} MODIFY \`id\` VARBINARY(3072) NOT NULL`;
}

/**
 * Whether the legacy id column (`VARCHAR(256) CHARACTER SET ascii COLLATE ascii_bin`) keeps `id`
 * apart from every other id: ASCII only (anything else would be stored as `?`), at most 256
 * characters, and no trailing space (its PAD SPACE collation compares `a` and `a ` equal).
 */
export function legacyIdColumnHolds(id: string): boolean {
  return /^[\x00-\x7f]{0,255}[\x00-\x1f\x21-\x7f]$/.test(id);
}

/**
 * Creates a table once, lazily, on the first statement that needs it: concurrent first statements
 * share one CREATE, and a failed CREATE is not remembered — the next statement tries again (the
 * server may just be starting).
 */
export class TableOnce {
  #ready: boolean;
  #pending: Promise<void> | undefined;
  readonly #create: () => Promise<unknown>;

  /** `skip`: the table is known to exist (`createTable: false`), never run `create`. */
  constructor(create: () => Promise<unknown>, skip: boolean) {
    this.#create = create;
    this.#ready = skip;
  }

  get ready(): boolean {
    return this.#ready;
  }

  ensure(): Promise<void> {
    if (this.#ready) return Promise.resolve();
    this.#pending ??= this.#create().then(
      () => {
        this.#ready = true;
      },
      (error: unknown) => {
        this.#pending = undefined;
        throw error;
      },
    );
    return this.#pending;
  }
}
