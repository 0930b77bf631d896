/**
 * The message wire format, written and read by hand where protobuf-es costs too much: protobuf
 * primitives, a message's stored metadata (already in Delivery wire form), the hot requests and
 * responses, and the W3C trace context the metadata carries. A leaf: it imports nothing from
 * core or api (only the generated protobuf types), so core, api, store and bench can all use it.
 */
export {
  type DeliveryFields,
  decodeOrMalformed,
  decodeReceiveRequest,
  decodeSendPackRequest,
  encodeDeliveries,
  encodeSendPackResponse,
  malformedReason,
  type OutcomeFields,
} from "./fast-codec.js";
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
export {
  type ConfirmFields,
  type CreditFields,
  decodePublishRequest,
  encodePublishResponse,
} from "./publish-codec.js";
export { decodeRun, encodeRun, type RunMessage, type RunRecord, type RunRow } from "./run-body.js";
export { newTraceparent, traceIdOf } from "./trace-context.js";
export { varintSize, WireReader, writeVarint } from "./wire-format.js";
