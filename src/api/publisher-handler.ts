import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { Priority as WirePriority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  type SendPackRequest,
  type SendPackResponse,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { type Broker, checkDelay, invalidArgument, type NewMessage, type Priority } from "../core/index.js";
import { endPublishSpan, type Telemetry } from "../telemetry/index.js";
import { encodeSendPackResponse, malformedReason } from "../wire/index.js";
import type { CallGuard } from "./call-guard.js";
import { preEncoded } from "./grpc-adapter.js";
import { type PublishQuota, quotaHolder } from "./publish-quota.js";
import { toGrpcStatus } from "./status.js";

/** ms since epoch of the call's deadline, or Infinity. */
export function callDeadline(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : Number(d);
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/** Translates a wire pack into domain messages (the size checks happen in the core). */
export function toNewMessages(req: Pick<SendPackRequest, "messages">, now: number): NewMessage[] {
  return req.messages.map((m, i) => {
    let deliverAt = 0;
    if (m.deliverAt !== undefined) {
      deliverAt = timestampMs(m.deliverAt);
    } else if (m.delay !== undefined) {
      deliverAt = now + checkDelay(`messages[${i}].delay`, durationMs(m.delay));
    }
    return {
      data: m.data,
      attributes: m.attributes,
      orderingKey: m.orderingKey,
      messageId: m.messageId,
      deliverAt: deliverAt > now ? deliverAt : 0,
      priority: toPriority(i, m.priority),
    };
  });
}

/** The domain priority of a wire one; INVALID_ARGUMENT naming the message for an unknown value. */
function toPriority(i: number, p: WirePriority): Priority | undefined {
  switch (p) {
    case WirePriority.UNSPECIFIED:
    case WirePriority.NORMAL:
      return undefined;
    case WirePriority.URGENT:
      return "urgent";
    case WirePriority.BULK:
      return "bulk";
    default:
      throw invalidArgument(`messages[${i}].priority`, `${p} is not a priority (1 urgent, 2 normal, 3 bulk)`);
  }
}

/** PublisherService.SendPack: needs the publish right on the topic (see CallGuard). */
export function sendPackHandler(
  broker: Broker,
  telemetry: Telemetry,
  guard: CallGuard,
  quota: PublishQuota,
): grpc.handleUnaryCall<SendPackRequest, SendPackResponse> {
  return (call, callback) => {
    const started = performance.now();
    const bad = malformedReason(call.request);
    if (bad !== undefined) {
      callback(toGrpcStatus(invalidArgument("request", `is not a valid SendPackRequest (${bad})`)));
      return;
    }
    const { topic } = call.request;
    let done: () => void;
    try {
      const caller = guard.authorize("SendPack", call, [{ action: "publish", topic }]);
      const who = quotaHolder(caller);
      let bytes = 0;
      if (quota.enabled) for (const m of call.request.messages) bytes += m.data.byteLength;
      done = quota.admit(who, call.request.messages.length, bytes);
    } catch (err) {
      callback(toGrpcStatus(err));
      return;
    }
    const metadataParent = call.metadata.get("traceparent")[0];
    const span = telemetry.startPublishSpan(
      topic,
      call.request.messages.length,
      typeof metadataParent === "string" ? metadataParent : undefined,
      call.request.messages[0]?.attributes,
    );
    let messages: NewMessage[];
    try {
      messages = toNewMessages(call.request, Date.now());
    } catch (err) {
      done();
      endPublishSpan(span, err as Error);
      callback(toGrpcStatus(err));
      return;
    }
    broker.publish(topic, messages, callDeadline(call)).then(
      (r) => {
        done();
        endPublishSpan(span, r);
        telemetry.metrics.confirmSeconds.record((performance.now() - started) / 1000, { topic });
        callback(
          null,
          preEncoded(SendPackResponseSchema, encodeSendPackResponse(r.firstSeq, r.lastSeq, r.results)),
        );
      },
      (err: unknown) => {
        done();
        endPublishSpan(span, err as Error);
        callback(toGrpcStatus(err));
      },
    );
  };
}
