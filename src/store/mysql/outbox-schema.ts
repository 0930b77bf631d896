/**
 * The outbox tables in the application's database (the README's "Transactional outbox" shows
 * the same SQL for applications that create tables in their own migrations).
 *
 * - `nb_outbox`: one row per message, written by the application inside its own transaction.
 *   `id` gives the order (see OutboxGate); `attributes` is a JSON object of strings (`traceparent`
 *   and `tracestate` included) or NULL.
 * - `nb_outbox_key`: one row per ordering key (SHA-256 of it): the client helpers take its row
 *   lock before inserting, so transactions with the same key commit in id order.
 * - `nb_outbox_relay`, `nb_outbox_topic`: the relay's own state (source id, cursor, and per topic
 *   the seq its recovery scans from), written only by the broker.
 * - `nb_outbox_lease`: with --cluster, which broker relays the outbox (see OutboxLease).
 * - `nb_outbox_gaps`: one row, the gaps the relay passed recently (JSON `[[lo, hi, age ms], …]`,
 *   ages as of `written_at`, the database's clock in ms), stored with its cursor so the next
 *   relay goes on watching them. A table of its own, not a column of `nb_outbox_relay`: adding
 *   a column to an existing database would need the ALTER privilege, which the relay's user
 *   does not otherwise need.
 */
export const OUTBOX_TABLES: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS nb_outbox (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    topic VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ordering_key VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    attributes TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    data LONGBLOB NOT NULL,
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
  ) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS nb_outbox_key (key_hash BINARY(32) NOT NULL PRIMARY KEY) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS nb_outbox_relay (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY, source_id CHAR(16) NOT NULL,
    cursor_id BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS nb_outbox_topic (
    topic VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    scan_from BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS nb_outbox_lease (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    epoch BIGINT UNSIGNED NOT NULL, expires_at BIGINT NOT NULL) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS nb_outbox_gaps (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY, gaps TEXT NOT NULL,
    written_at BIGINT NOT NULL) ENGINE=InnoDB`,
];
