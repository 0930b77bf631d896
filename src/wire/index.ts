/**
 * The message wire format, written and read by hand where protobuf-es costs too much: protobuf
 * primitives, a message's stored metadata (already in Delivery wire form), the hot requests and
 * responses, and the W3C trace context the metadata carries. A leaf: it imports nothing from
 * core or api (only the generated protobuf types), so core, api, store and bench can all use it.
 */
export {
  ackSeqNumbers,
  type DeliveryFields,
  decodeOrMalformed,
  decodeReceiveRequest,
  encodeDeliveries,
  encodeSendPackResponse,
  malformedReason,
  type OutcomeColumns,
} from "./fast-codec.js";
export { buildRun, copyStoredRange, type IndexedRun, joinRuns, recordOf, sliceRun } from "./indexed-run.js";
export {
  decodeMeta,
  deliveryMeta,
  encodeMeta,
  type MetaFields,
  type MetaSource,
  metaContentBytes,
  metaIds,
  type Priority,
} from "./message-meta.js";
export { joinPacks, Pack, type PackMessage, packOf } from "./pack.js";
export {
  type ConfirmFields,
  type CreditFields,
  encodePublishResponse,
  type PublishRequestBytes,
  readPublishRequest,
} from "./publish-codec.js";
export { type RecordSpan, recordInfo, recordPriority, recordTime } from "./record-span.js";
export { decodeRun, encodeRun, type RunMessage, type RunRecord, type RunRow } from "./run-body.js";
export { readSendPack, type SendPackBytes } from "./send-pack-reader.js";
export { type TimestampProblem, timestampMsProblem, timestampProblem } from "./timestamp-range.js";
export { newTraceparent, traceIdOf } from "./trace-context.js";
export { ByteView, copyBytes, copyViews, varintSize, WireReader, writeVarint } from "./wire-format.js";
