import type * as grpc from "@grpc/grpc-js";
import {
  type SendPackResponse,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { type Broker, type Cluster, checkDelay, checkPack, invalidArgument } from "../core/index.js";
import { endPublishSpan, type Telemetry } from "../telemetry/index.js";
import { encodeSendPackResponse, type Pack, type SendPackBytes } from "../wire/index.js";
import type { CallGuard } from "./call-guard.js";
import { preEncoded } from "./grpc-adapter.js";
import type { PeerAuth } from "./peer-auth.js";
import { type PublishQuota, quotaHolder } from "./publish-quota.js";
import { toGrpcStatus } from "./status.js";

/** ms since epoch of the call's deadline, or Infinity. */
export function callDeadline(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : Number(d);
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/**
 * Checks the pack's priorities and resolves its deliver_at and delay fields into deliver-at
 * times (ms since epoch; 0 for now), checking delays. Most packs have neither: nothing is
 * allocated then.
 */
export function resolvePack(pack: Pack, now: number): void {
  const bad = pack.badPriority;
  if (bad !== undefined) throw priorityError(bad.index, bad.value);
  const { sentDeliverAt, sentDelay } = pack;
  if (sentDeliverAt === undefined && sentDelay === undefined) return;
  const out = new Float64Array(pack.count);
  for (let i = 0; i < pack.count; i++) {
    let deliverAt = sentDeliverAt?.[i] ?? 0;
    if (deliverAt === 0 && sentDelay !== undefined && !Number.isNaN(sentDelay[i]!))
      deliverAt = now + checkDelay(`messages[${i}].delay`, sentDelay[i]!);
    out[i] = deliverAt > now ? deliverAt : 0;
  }
  pack.deliverAt = out;
}

function priorityError(i: number, p: number): Error {
  return invalidArgument(`messages[${i}].priority`, `${p} is not a priority (1 urgent, 2 normal, 3 bulk)`);
}

/**
 * The producer's attributes of a pack's first message, for the publish span's parent; none
 * when the broker added its traceparent (that is not the producer's context).
 */
export function firstAttributes(pack: Pack): Record<string, string> | undefined {
  return pack.count > 0 && pack.storedBytes[0] === pack.sentBytes[0] ? pack.message(0).attributes : undefined;
}

/**
 * A SendPack for a topic another broker of the cluster serves, checked against the limits that
 * broker published before it is forwarded there: a pack it would refuse is refused here at once,
 * INVALID_ARGUMENT naming the field, its limit and it (its gRPC refused one past its request
 * size as RESOURCE_EXHAUSTED naming neither). A broker that published none (an older version)
 * checks its packs itself, as does the owner of a malformed request.
 */
export function ownerLimitsScreen(cluster: Cluster): (request: SendPackBytes, owner: string) => void {
  return ({ topic, pack, malformed }, owner) => {
    const limits = cluster.limitsAt(owner);
    if (limits === undefined || malformed !== undefined) return;
    checkPack(pack, { ...limits, whose: `at broker ${owner}, which serves topic ${topic}` });
  };
}

/** A SendPack let in: who it counts for, and what to call when it is over. */
interface Admitted {
  readonly by: string;
  readonly done: () => void;
}

/**
 * Authenticates and authorizes a client's SendPack and counts it against its principal's
 * shares and publish quota; throws the refusal.
 */
function admitClient(
  call: Parameters<grpc.handleUnaryCall<SendPackBytes, SendPackResponse>>[0],
  guard: CallGuard,
  quota: PublishQuota,
  topic: string,
  pack: Pack,
): Admitted {
  const caller = guard.authorize("SendPack", call, [{ action: "publish", topic }]);
  const by = quotaHolder(caller);
  let bytes = 0;
  if (quota.enabled) for (let i = 0; i < pack.count; i++) bytes += pack.dataEnd[i]! - pack.dataStart[i]!;
  const leave = guard.enter(caller);
  try {
    const admitted = quota.admit(by, pack.count, bytes);
    return {
      by,
      done: () => {
        admitted();
        leave();
      },
    };
  } catch (err) {
    leave();
    throw err;
  }
}

/**
 * PublisherService.SendPack: needs the publish right on the topic (see CallGuard), except for
 * dead letters another broker of the cluster sends (verified by `peers`): those carry the
 * reserved dead-letter attributes and no client's principal, and pass no client's quota, as
 * dead letters written by the broker that owns both topics do.
 */
export function sendPackHandler(
  broker: Broker,
  telemetry: Telemetry,
  guard: CallGuard,
  quota: PublishQuota,
  peers?: PeerAuth,
): grpc.handleUnaryCall<SendPackBytes, SendPackResponse> {
  return (call, callback) => {
    const started = performance.now();
    const bad = call.request.malformed;
    if (bad !== undefined) {
      callback(toGrpcStatus(invalidArgument("request", `is not a valid SendPackRequest (${bad})`)));
      return;
    }
    const { topic, pack } = call.request;
    const deadLetters = peers?.deadLetters(call.metadata) ?? false;
    let admitted: Admitted;
    try {
      admitted = deadLetters
        ? { by: `broker ${peers?.peerOf(call.metadata)}`, done: () => undefined }
        : admitClient(call, guard, quota, topic, pack);
    } catch (err) {
      callback(toGrpcStatus(err));
      return;
    }
    const { by, done } = admitted;
    const metadataParent = call.metadata.get("traceparent")[0];
    const span = telemetry.startPublishSpan(
      topic,
      pack.count,
      typeof metadataParent === "string" ? metadataParent : undefined,
      () => firstAttributes(pack),
    );
    try {
      resolvePack(pack, Date.now());
    } catch (err) {
      done();
      endPublishSpan(span, err as Error);
      callback(toGrpcStatus(err));
      return;
    }
    broker.publish(topic, pack, callDeadline(call), by, deadLetters).then(
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
