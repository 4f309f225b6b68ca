/**
 * The tables, as `CREATE TABLE IF NOT EXISTS` statements. Choices that matter:
 * - A primary key on every table: Galera replicates row events by key and documents tables without
 *   one as unsupported (deletes and certification misbehave).
 * - Session ids in `ascii_bin`: case-sensitive and byte-exact. Under the server's default
 *   case-insensitive collation, `abc` and `ABC` would be the same session.
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
  \`id\` VARCHAR(256) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
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
