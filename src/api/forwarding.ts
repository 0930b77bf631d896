import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type * as grpc from "@grpc/grpc-js";
import type { Forwarder } from "./forwarder.js";
import type { ServiceHandlers } from "./grpc-adapter.js";
import { toGrpcStatus } from "./status.js";

/** The topic a request is about ("" for none: served here). */
export type TopicOf = (method: string, request: object) => string;

const text = (v: unknown) => (typeof v === "string" ? v : "");

/**
 * The topic of a request of any NerveBus service: `topic` (a name or a Topic), a subscription's
 * `topic`, or `name` for the calls whose name is a topic's. ListTopics, LocateTopic and the
 * cluster calls name none.
 */
export const topicOfRequest: TopicOf = (method, request) => {
  const r = request as {
    name?: unknown;
    topic?: unknown;
    subscription?: { topic?: unknown };
    subscribe?: { topic?: unknown };
    open?: { topic?: unknown };
  };
  // Answered by the broker called: where the topic is served, from its own view.
  if (method === "locateTopic") return "";
  if (method === "getTopic" || method === "deleteTopic") return text(r.name);
  if (typeof r.topic === "string") return r.topic;
  if (typeof r.topic === "object" && r.topic !== null) return text((r.topic as { name?: unknown }).name);
  if (r.subscription !== undefined) return text(r.subscription.topic);
  if (r.subscribe !== undefined) return text(r.subscribe.topic);
  if (r.open !== undefined) return text(r.open.topic);
  return "";
};

/**
 * Checks a unary call must pass before it is forwarded to the broker at `owner`, by method
 * (local name): each throws the refusal, which the caller gets at once, and nothing reaches
 * the owner.
 */
export type ForwardScreens = Readonly<Record<string, (request: never, owner: string) => void>>;

/**
 * The service's handlers, each first refusing a call that claims to come from another broker
 * and does not prove it (PeerAuth.refusal), then asking the cluster where its call's topic is
 * served: calls for another broker's topic are forwarded there, whole; the others run here, and
 * one that finds out here that another broker owns the topic (its lease changed since the last
 * heartbeat) is forwarded then (unary calls; a Receive stream ends with UNAVAILABLE naming the
 * owner, and the client reconnects).
 */
export function forwarding<S extends GenServiceMethods>(
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  fwd: Forwarder,
  screens: ForwardScreens = {},
  topicOf: TopicOf = topicOfRequest,
): ServiceHandlers<S> {
  const out: Record<string, unknown> = {};
  for (const m of service.methods) {
    const path = `/${service.typeName}/${m.name}`;
    const handler = (handlers as Record<string, unknown>)[m.localName];
    if (m.methodKind === "unary") {
      const serve = handler as grpc.handleUnaryCall<object, unknown>;
      const screen = screens[m.localName] as ((request: object, owner: string) => void) | undefined;
      out[m.localName] = ((call, callback) => {
        const refused = fwd.refusal(call);
        if (refused !== null) return callback(refused);
        const forward = (to: string) => {
          try {
            screen?.(call.request, to);
          } catch (err) {
            return callback(toGrpcStatus(err));
          }
          fwd.unary(path, to, call, callback);
        };
        const to = fwd.target(topicOf(m.localName, call.request), call.metadata);
        if (to !== undefined) return forward(to);
        serve(call, (err, value, trailer, flags) => {
          const owner = fwd.redirect(err as Partial<grpc.StatusObject> | null, call.metadata);
          if (owner !== undefined) return forward(owner);
          callback(err, value, trailer, flags);
        });
      }) satisfies grpc.handleUnaryCall<object, unknown>;
    } else if (m.methodKind === "bidi_streaming") {
      const serve = handler as grpc.handleBidiStreamingCall<object, unknown>;
      out[m.localName] = ((call) => {
        const refused = fwd.refusal(call);
        if (refused !== null) return void call.emit("error", refused);
        // The first request names the topic; it is handed to whichever side serves the stream.
        call.once("data", (first: object) => {
          const to = fwd.target(topicOf(m.localName, first), call.metadata);
          if (to !== undefined) return fwd.stream(path, to, call, first);
          serve(call);
          call.emit("data", first);
        });
      }) satisfies grpc.handleBidiStreamingCall<object, unknown>;
    } else {
      out[m.localName] = handler;
    }
  }
  return out as ServiceHandlers<S>;
}
