import { context } from "@opentelemetry/api";
import { injectTraceContext } from "./trace-context.js";

/**
 * What `writeOutbox` needs of a connection: mysql2/promise's `Connection` or `PoolConnection`
 * (any object whose `query(sql, values)` resolves to `[result, fields]` with `result.insertId`).
 */
export interface OutboxConnection {
  query(sql: string, values?: unknown): Promise<unknown>;
}

/** A message for the transactional outbox. */
export interface OutboxMessage {
  readonly data: Uint8Array | string;
  readonly attributes?: Readonly<Record<string, string>>;
  /** Messages with the same key are delivered in the order their transactions committed. */
  readonly orderingKey?: string;
}

/**
 * The statements of `writeOutbox`, the same in the Go and Python clients: lock the ordering key
 * (so transactions with one key commit in id order), then insert the row.
 */
export const OUTBOX_LOCK_KEY_SQL =
  "INSERT INTO nb_outbox_key (key_hash) VALUES (UNHEX(SHA2(?, 256))) ON DUPLICATE KEY UPDATE key_hash = key_hash";
export const OUTBOX_INSERT_SQL =
  "INSERT INTO nb_outbox (topic, ordering_key, attributes, data) VALUES (?, ?, ?, ?)";

/**
 * Writes `message` for `topic` into the outbox table `nb_outbox` on `conn`, inside the
 * transaction the caller has begun on it: the broker (started with `--outbox` naming this
 * database) publishes it once, if and only if that transaction commits. The active
 * OpenTelemetry context is written as the message's `traceparent` unless the attributes carry
 * one. With an ordering key, the key's row in `nb_outbox_key` stays locked until the
 * transaction ends: write outbox rows after the statements that lock your own rows, so every
 * transaction takes locks in the same order. Returns the row id; throws the driver's error.
 */
export async function writeOutbox(
  conn: OutboxConnection,
  topic: string,
  message: OutboxMessage,
): Promise<number> {
  const attributes: Record<string, string> = { ...message.attributes };
  if (attributes.traceparent === undefined) injectTraceContext(context.active(), attributes);
  const orderingKey = message.orderingKey ?? "";
  if (orderingKey !== "") await conn.query(OUTBOX_LOCK_KEY_SQL, [orderingKey]);
  const data = typeof message.data === "string" ? Buffer.from(message.data) : Buffer.from(message.data);
  const result = await conn.query(OUTBOX_INSERT_SQL, [
    topic,
    orderingKey,
    Object.keys(attributes).length === 0 ? null : JSON.stringify(attributes),
    data,
  ]);
  const header = (Array.isArray(result) ? result[0] : result) as { insertId?: number };
  return Number(header?.insertId ?? 0);
}
