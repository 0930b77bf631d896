import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import {
  PublisherService,
  type PublishRequest,
  type SendPackRequest,
  type SendPackResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { SubscriberService } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { Security } from "../auth/index.js";
import { type Broker, type Cluster, RESERVED_ATTRIBUTE_PREFIX } from "../core/index.js";
import type { Telemetry } from "../telemetry/index.js";
import { decodeReceiveRequest, readPublishRequest, readSendPack } from "../wire/index.js";
import { adminHandlers } from "./admin-handler.js";
import { Admission, type AdmissionLimits } from "./admission.js";
import { CallDrain } from "./call-drain.js";
import type { CallGuard } from "./call-guard.js";
import type { ConnectionLimits } from "./connection-limits.js";
import { Forwarder } from "./forwarder.js";
import { type ForwardScreens, forwarding } from "./forwarding.js";
import { addService, type ServiceHandlers } from "./grpc-adapter.js";
import { GrpcListener } from "./grpc-listener.js";
import type { PeerAuth } from "./peer-auth.js";
import type { PeerChannels } from "./peer-channels.js";
import { PublishQuota, type QuotaLimits } from "./publish-quota.js";
import { PublishStreams } from "./publish-stream.js";
import { ownerLimitsScreen, sendPackHandler } from "./publisher-handler.js";
import { addReflection } from "./reflection.js";
import { StreamBuffers } from "./stream-buffers.js";
import { ReceiveSessions } from "./subscriber-handler.js";
import { transportErrorInterceptor } from "./transport-errors.js";

const SHUTTING_DOWN = "broker is shutting down; reconnect";

/**
 * How long answers already given may take to reach the socket before connections are cut:
 * writing a few frames takes well under a millisecond, so this only bounds a stuck connection.
 */
const FLUSH_MS = 1000;

/** Whether `p` settles within `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ServerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  readonly listen: string;
  /** Largest request or response on the wire: a full pack plus its framing. */
  readonly maxMessageBytes: number;
  readonly heartbeatMs: number;
  /** Server keepalive ping interval; a client that stops answering is dropped. */
  readonly keepaliveMs: number;
  /** Publish rates per principal (see PublishQuota). */
  readonly publishQuota: QuotaLimits;
  /** SendPack calls in progress per connection and in all (see Admission). */
  readonly admission: AdmissionLimits;
  /** A connection without calls for this long is closed, however well it answers pings. */
  readonly maxConnectionIdleMs: number;
  /** Open TCP connections and how long one has to become an HTTP/2 connection (see GrpcListener). */
  readonly connections: ConnectionLimits;
  /** HTTP/2 MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams: number;
  /** What all Receive streams together may hold for slow readers (see StreamBuffers). */
  readonly streamBufferBytes: number;
  readonly telemetry: Telemetry;
  /** Who may call what; every RPC but health and reflection goes through it. */
  readonly guard: CallGuard;
  /** TLS material (and its reloads); plaintext when undefined or without TLS. */
  readonly security?: Security;
  /** Several brokers share the store: calls for other brokers' topics are forwarded to them. */
  readonly cluster?: Cluster;
  /** With `cluster`: how calls from other brokers are told apart, and the channels to them. */
  readonly peers?: { readonly auth: PeerAuth; readonly channels: PeerChannels };
}

/** A running gRPC front end. */
export interface RunningServer {
  /** HOST:PORT actually bound. */
  readonly address: string;
  readonly port: number;
  readonly sessions: ReceiveSessions;
  /** SendPack request bytes held now (or reserved for bodies on their way). */
  readonly requestBytes: () => number;
  /** What all Receive streams together hold for their readers now. */
  readonly streamBuffers: StreamBuffers;
  /** Sets the standard gRPC health status of every service (NOT_SERVING while draining or while the store is down). */
  setServing(serving: boolean): void;
  /**
   * Graceful stop: refuses new calls with UNAVAILABLE, ends Receive streams with UNAVAILABLE, lets
   * calls in progress finish and waits until their answers are written, then closes the
   * connections. Calls still unanswered after `graceMs` get UNAVAILABLE (outcome unknown).
   */
  shutdown(graceMs: number): Promise<void>;
}

/** Starts the gRPC services of a broker. */
export async function startServer(broker: Broker, options: ServerOptions): Promise<RunningServer> {
  const services = ["", PublisherService.typeName, SubscriberService.typeName, AdminService.typeName];
  // While draining, the broker's own calls are refused; health checks still get NOT_SERVING.
  const ours = services.filter((s) => s !== "").map((s) => `/${s}/`);
  const drain = new CallDrain((path) => ours.some((prefix) => path.startsWith(prefix)));
  const admission = new Admission(options.admission, options.peers?.auth);
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.keepalive_time_ms": options.keepaliveMs,
    "grpc.max_connection_idle_ms": options.maxConnectionIdleMs,
    "grpc.keepalive_timeout_ms": 20_000,
    // Clients may ping every 10 s without data (grpc-go's minimum) without being dropped.
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams,
    // grpc-js's own refusals rewritten first, then the drain: both need grpc-js's own call (see
    // transport-errors.ts, CallDrain). Requests are received in full before any handler runs:
    // admission refuses publish calls over the limits before their bodies are read.
    interceptors: [transportErrorInterceptor, drain.interceptor, admission.interceptor],
  });
  const { guard } = options;
  const streamBuffers = new StreamBuffers(options.streamBufferBytes);
  const sessions = new ReceiveSessions(broker, {
    heartbeatMs: options.heartbeatMs,
    guard,
    buffers: streamBuffers,
  });
  const quota = new PublishQuota(options.publishQuota);
  const publishStreams = new PublishStreams(broker, { guard, quota, telemetry: options.telemetry });
  const { cluster, peers } = options;
  const forwarder =
    cluster === undefined || peers === undefined
      ? undefined
      : new Forwarder(cluster, peers.auth, peers.channels);
  const routed = <S extends GenServiceMethods>(
    service: GenService<S>,
    handlers: ServiceHandlers<S>,
    screens?: ForwardScreens,
  ) => (forwarder === undefined ? handlers : forwarding(service, handlers, forwarder, screens));
  const keepRaw = forwarder !== undefined;
  addService(
    server,
    PublisherService,
    routed(
      PublisherService,
      {
        // Its requests are what readSendPack makes of the bytes (a Pack), not protobuf-es objects.
        sendPack: sendPackHandler(
          broker,
          options.telemetry,
          guard,
          quota,
          peers?.auth,
        ) as unknown as grpc.handleUnaryCall<SendPackRequest, SendPackResponse>,
        publish: publishStreams.handler(),
      },
      // The topic's owner's limits apply: a pack it would refuse is refused before it is sent.
      cluster === undefined ? {} : { sendPack: ownerLimitsScreen(cluster) },
    ),
    {
      sendPack: (buf) => readSendPack(buf, RESERVED_ATTRIBUTE_PREFIX) as unknown as SendPackRequest,
      publish: (buf) => readPublishRequest(buf, RESERVED_ATTRIBUTE_PREFIX) as unknown as PublishRequest,
    },
    keepRaw,
  );
  addService(
    server,
    SubscriberService,
    routed(SubscriberService, { receive: sessions.handler() }),
    { receive: decodeReceiveRequest },
    keepRaw,
  );
  addService(
    server,
    AdminService,
    routed(AdminService, adminHandlers(broker, guard, options.cluster)),
    {},
    keepRaw,
  );
  const health = new HealthImplementation(Object.fromEntries(services.map((s) => [s, "SERVING" as const])));
  health.addToServer(server);
  addReflection(server);
  const listener = new GrpcListener(
    server.createConnectionInjector(grpc.ServerCredentials.createInsecure()),
    options.connections,
    options.security,
  );
  const port = await listener.listen(options.listen);
  const host = options.listen.slice(0, options.listen.lastIndexOf(":"));
  return {
    address: `${host}:${port}`,
    port,
    sessions,
    requestBytes: () => admission.heldBytes,
    streamBuffers,
    setServing(serving: boolean) {
      for (const s of services) health.setStatus(s, serving ? "SERVING" : "NOT_SERVING");
    },
    async shutdown(graceMs: number) {
      for (const s of services) health.setStatus(s, "NOT_SERVING");
      drain.startDraining();
      listener.stopAccepting();
      // GOAWAY on every connection; each connection closes once its last
      // stream has, so every answer is written before its socket goes.
      const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      sessions.closeAll(SHUTTING_DOWN);
      publishStreams.closeAll(SHUTTING_DOWN);
      drain.endOtherStreams(SHUTTING_DOWN);
      // Every call answered and its stream closed; after the grace, a unary call still waiting
      // gets UNAVAILABLE (outcome unknown) rather than a cut connection.
      if (!(await settledWithin(drain.idle(), graceMs))) {
        drain.answerUnary("broker shut down before the call was answered; outcome unknown, retry");
        await settledWithin(drain.idle(), FLUSH_MS);
      }
      // A connection with no stream left closes by itself and writes out what it holds first;
      // cutting it earlier, even right after its last stream closed, lost that answer. One that
      // stays (a client that never spoke HTTP/2) holds nothing: it is cut after FLUSH_MS.
      await settledWithin(closed, FLUSH_MS);
      server.forceShutdown();
      listener.destroyAll();
    },
  };
}
