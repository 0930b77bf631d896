import { decodeMeta, encodeMeta, type MetaSource, type Priority } from "./message-meta.js";
import { newTraceparent, traceIdOf } from "./trace-context.js";

/** A message as a pack holds it once decoded (the slow paths: delayed messages, tests, tools). */
export interface PackMessage extends MetaSource {
  readonly data: Uint8Array;
  /** Deliver no earlier than this (ms since epoch); 0 for now. */
  readonly deliverAt: number;
}

/** Bytes of the trace id field (tag, length, 32 hex characters) that ends a traced message's meta. */
export const TRACE_ID_FIELD_BYTES = 34;

/**
 * The messages of one SendPack (or of a pack the broker makes), held column-wise: payloads as
 * offsets into one buffer, each message's metadata already in its stored, Delivery-ready form
 * (message-meta.ts: attributes with a `traceparent`, ordering key, message id, trace id) as
 * offsets into another, and per-message numbers in typed arrays. Appending it writes a run
 * body straight from these bytes; no object per message is made on the way.
 */
export class PackColumns {
  readonly dataStart: Uint32Array;
  readonly dataEnd: Uint32Array;
  readonly metaStart: Uint32Array;
  readonly metaEnd: Uint32Array;
  /** 1 when the message's metadata ends with its trace id field. */
  readonly traced: Uint8Array;
  /** Size as limits count it (messageBytes), as sent. */
  readonly sentBytes: Uint32Array;
  /** …and as stored (with the traceparent the broker added, if it did). */
  readonly storedBytes: Uint32Array;
  /** UTF-8 bytes of the ordering key and of the message id (limits). */
  readonly keyBytes: Uint32Array;
  readonly idBytes: Uint32Array;
  /** Delivery.priority as stored: 1 urgent, 3 bulk, 0 normal. */
  readonly priority: Uint8Array;

  /**
   * Columns for `n` messages, all 0: views into one buffer (one allocation per pack, not ten:
   * every ArrayBuffer is a native allocation the collector tracks).
   */
  constructor(n: number) {
    const all = new ArrayBuffer(n * (8 * 4 + 2));
    const u32 = (k: number) => new Uint32Array(all, k * 4 * n, n);
    this.dataStart = u32(0);
    this.dataEnd = u32(1);
    this.metaStart = u32(2);
    this.metaEnd = u32(3);
    this.sentBytes = u32(4);
    this.storedBytes = u32(5);
    this.keyBytes = u32(6);
    this.idBytes = u32(7);
    this.traced = new Uint8Array(all, 32 * n, n);
    this.priority = new Uint8Array(all, 33 * n, n);
  }
}

/** What only some packs have, each undefined when no message has it. */
export interface PackExtras {
  /** Message ids ("" for none). */
  readonly messageIds?: string[] | undefined;
  /** Deliver-at (ms since epoch, 0 = none) and delay (ms, NaN = none) as sent. */
  readonly sentDeliverAt?: Float64Array | undefined;
  readonly sentDelay?: Float64Array | undefined;
  /** The first attribute key with the reserved prefix the reader was given. */
  readonly reservedKey?: { readonly index: number; readonly key: string } | undefined;
  /** The first priority that is not one (1 urgent, 2 normal, 3 bulk, or unset). */
  readonly badPriority?: { readonly index: number; readonly value: number } | undefined;
}

/** What a pack's `src` becomes once its payloads are released. */
const EMPTY = Buffer.alloc(0);

export class Pack extends PackColumns {
  /** See `src`. */
  #src: Buffer;
  /** Final deliver-at times (ms since epoch, 0 = now), once resolved; undefined when none is delayed. */
  deliverAt: Float64Array | undefined;
  readonly messageIds: string[] | undefined;
  readonly sentDeliverAt: Float64Array | undefined;
  readonly sentDelay: Float64Array | undefined;
  readonly reservedKey: { readonly index: number; readonly key: string } | undefined;
  readonly badPriority: { readonly index: number; readonly value: number } | undefined;

  constructor(
    readonly count: number,
    /** Holds every payload (see dataStart, dataEnd), until releasePayloads. */
    src: Buffer,
    /** Holds every message's stored metadata (see metaStart, metaEnd). */
    readonly meta: Buffer,
    columns: PackColumns,
    extras: PackExtras,
  ) {
    super(0);
    this.#src = src;
    Object.assign(this, columns);
    this.messageIds = extras.messageIds;
    this.sentDeliverAt = extras.sentDeliverAt;
    this.sentDelay = extras.sentDelay;
    this.reservedKey = extras.reservedKey;
    this.badPriority = extras.badPriority;
  }

  /** Message `i`'s priority; undefined for normal. */
  priorityOf(i: number): Priority | undefined {
    const p = this.priority[i];
    return p === 1 ? "urgent" : p === 3 ? "bulk" : undefined;
  }

  /** Message `i`'s id, "" for none. */
  messageId(i: number): string {
    return this.messageIds?.[i] ?? "";
  }

  /** Hex trace id of message `i`, "" for none. */
  traceId(i: number): string {
    if (this.traced[i] === 0) return "";
    const end = this.metaEnd[i]!;
    return this.meta.toString("latin1", end - 32, end);
  }

  /**
   * Lets go of the bytes the payloads are read from (for a pack read by readSendPack, the
   * whole request), once they are copied into a run. A pack is held until its confirm: without
   * this, every pack waiting for its commit held its request as well as its run, a second
   * copy of its payloads that outlived young-generation collections and cost old-generation
   * ones. Columns, metadata, ids and trace ids stay; a payload can no longer be read.
   */
  releasePayloads(): void {
    this.#src = EMPTY;
  }

  /** The bytes every payload is read from (see dataStart, dataEnd); empty once released. */
  get src(): Buffer {
    return this.#src;
  }

  /** Message `i` decoded (slow paths only). */
  message(i: number): PackMessage {
    if (this.#src === EMPTY) throw new RangeError("the pack's payloads were released once its run was built");
    const m = decodeMeta(this.meta.subarray(this.metaStart[i]!, this.metaEnd[i]!));
    return {
      data: this.src.subarray(this.dataStart[i]!, this.dataEnd[i]!),
      attributes: m.attributes,
      orderingKey: m.orderingKey,
      messageId: m.messageId,
      deliverAt: this.deliverAt?.[i] ?? 0,
      priority: m.priority === "normal" ? undefined : m.priority,
    };
  }

  /** The messages at `indices` (ascending), as a pack of their own. */
  select(indices: readonly number[]): Pack {
    return packOf(indices.map((i) => this.message(i)));
  }
}

const NO_FIELDS: MetaSource = { attributes: {}, orderingKey: "", messageId: "" };

/** UTF-8 bytes of a string (ASCII without a native call). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return Buffer.byteLength(s);
  return s.length;
}

/**
 * A pack of messages given as objects (due delayed messages, dead letters, tests): a message
 * without a `traceparent` attribute gets a new one, as on the wire path.
 */
export function packOf(messages: readonly PackMessage[], reservedPrefix?: string): Pack {
  const n = messages.length;
  const metas: Buffer[] = new Array(n);
  const c = new PackColumns(n);
  const {
    dataStart,
    dataEnd,
    metaStart,
    metaEnd,
    traced,
    sentBytes,
    storedBytes,
    keyBytes,
    idBytes,
    priority,
  } = c;
  let messageIds: string[] | undefined;
  let deliverAt: Float64Array | undefined;
  let reservedKey: { index: number; key: string } | undefined;
  let dataSize = 0;
  let metaSize = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    let sent = m.data.byteLength;
    for (const k in m.attributes) {
      sent += utf8Length(k) + utf8Length(m.attributes[k] ?? "");
      if (reservedKey === undefined && reservedPrefix !== undefined && k.startsWith(reservedPrefix))
        reservedKey = { index: i, key: k };
    }
    keyBytes[i] = utf8Length(m.orderingKey);
    idBytes[i] = utf8Length(m.messageId);
    sent += keyBytes[i]! + idBytes[i]!;
    sentBytes[i] = sent;
    let attributes = m.attributes;
    if (attributes.traceparent === undefined) {
      const traceparent = newTraceparent();
      attributes = { ...attributes, traceparent };
      sent += "traceparent".length + traceparent.length;
    }
    storedBytes[i] = sent;
    const traceId = traceIdOf(attributes.traceparent) ?? "";
    traced[i] = traceId === "" ? 0 : 1;
    priority[i] = m.priority === "urgent" ? 1 : m.priority === "bulk" ? 3 : 0;
    // The trace id goes last, where Pack.traceId finds it.
    const fields = encodeMeta(
      { attributes, orderingKey: m.orderingKey, messageId: m.messageId, priority: m.priority },
      "",
    );
    const meta = traceId === "" ? fields : Buffer.concat([fields, encodeMeta(NO_FIELDS, traceId)]);
    metas[i] = meta;
    metaStart[i] = metaSize;
    metaSize += meta.length;
    metaEnd[i] = metaSize;
    dataStart[i] = dataSize;
    dataSize += m.data.byteLength;
    dataEnd[i] = dataSize;
    if (m.messageId !== "") {
      messageIds ??= new Array<string>(n).fill("");
      messageIds[i] = m.messageId;
    }
    if (m.deliverAt > 0) {
      deliverAt ??= new Float64Array(n);
      deliverAt[i] = m.deliverAt;
    }
  }
  const src = Buffer.allocUnsafe(dataSize);
  for (let i = 0; i < n; i++) src.set(messages[i]!.data, dataStart[i]!);
  const pack = new Pack(n, src, Buffer.concat(metas, metaSize), c, {
    messageIds,
    sentDeliverAt: deliverAt,
    reservedKey,
  });
  pack.deliverAt = deliverAt;
  return pack;
}

/**
 * Packs (already checked and resolved) as one, in order: payloads and metadata copied into one
 * buffer each, offsets moved. A Publish stream appends the batches read during an append as one.
 */
export function joinPacks(packs: readonly Pack[]): Pack {
  if (packs.length === 1) return packs[0]!;
  let n = 0;
  for (const p of packs) n += p.count;
  const c = new PackColumns(n);
  let messageIds: string[] | undefined;
  let deliverAt: Float64Array | undefined;
  let at = 0;
  let srcAt = 0;
  let metaAt = 0;
  for (const p of packs) {
    for (let i = 0; i < p.count; i++) {
      c.dataStart[at + i] = p.dataStart[i]! + srcAt;
      c.dataEnd[at + i] = p.dataEnd[i]! + srcAt;
      c.metaStart[at + i] = p.metaStart[i]! + metaAt;
      c.metaEnd[at + i] = p.metaEnd[i]! + metaAt;
    }
    c.traced.set(p.traced, at);
    c.sentBytes.set(p.sentBytes, at);
    c.storedBytes.set(p.storedBytes, at);
    c.keyBytes.set(p.keyBytes, at);
    c.idBytes.set(p.idBytes, at);
    c.priority.set(p.priority, at);
    if (p.messageIds !== undefined) {
      messageIds ??= new Array<string>(n).fill("");
      for (let i = 0; i < p.count; i++) messageIds[at + i] = p.messageIds[i]!;
    }
    if (p.deliverAt !== undefined) {
      deliverAt ??= new Float64Array(n);
      deliverAt.set(p.deliverAt, at);
    }
    at += p.count;
    srcAt += p.src.length;
    metaAt += p.meta.length;
  }
  const src = Buffer.concat(
    packs.map((p) => p.src),
    srcAt,
  );
  const meta = Buffer.concat(
    packs.map((p) => p.meta),
    metaAt,
  );
  const pack = new Pack(n, src, meta, c, { messageIds, sentDeliverAt: deliverAt });
  pack.deliverAt = deliverAt;
  return pack;
}
