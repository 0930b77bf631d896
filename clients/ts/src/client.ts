import * as grpc from "@grpc/grpc-js";
import { Admin } from "./admin.js";
import { channelCredentials, serverNameOptions, type TlsOptions, type TokenSource } from "./credentials.js";
import { NerveBusError, StatusCode } from "./errors.js";
import { AdminService } from "./gen/nervebus/v1/admin_pb.js";
import { PublisherService } from "./gen/nervebus/v1/publisher_pb.js";
import { createClient, FLOW_CONTROL_OPTIONS, type ServiceClient } from "./grpc-adapter.js";
import { MessageStream, type MessageStreamOptions } from "./message-stream.js";
import { type Connection, OwnerRouter } from "./owner-router.js";
import {
  Publisher,
  type PublisherOptions,
  type PublishMessage,
  type PublishOptions,
  type PublishResult,
} from "./publisher.js";
import { createSubscriberClient, type SubscriberClient } from "./receive-codec.js";
import { fixedRoute, type Route } from "./route.js";
import { encodePublishRequest, encodeSendPackRequest } from "./send-pack-codec.js";
import { StreamPublisher, type StreamPublisherOptions } from "./stream-publisher.js";
import { type MessageHandler, Subscriber, type SubscriberOptions } from "./subscriber.js";

/** Settings of a client. */
export interface ClientOptions {
  /** TLS: true for the system's roots, or the CA, client certificate and key to use. Default plaintext. */
  readonly tls?: TlsOptions | boolean;
  /** A bearer token (or a function giving the current one) sent with every call; needs `tls`. */
  readonly token?: TokenSource;
  /** Channel credentials made by hand, instead of `tls` and `token`. Default insecure (plaintext). */
  readonly credentials?: grpc.ChannelCredentials;
  /** gRPC channel options, merged over DEFAULT_CHANNEL_OPTIONS. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** Settings of the default publisher (used by client.publish()). */
  readonly publisher?: PublisherOptions;
  /** Default deadline of admin calls, in ms. Default 30000. */
  readonly adminTimeoutMs?: number;
  /** grpc-js client interceptors applied to every call (e.g. to add auth metadata or log). */
  readonly interceptors?: grpc.Interceptor[];
  /**
   * With several brokers on one database (`--cluster`): send each topic's publishes and Receive
   * streams straight to the broker that owns the topic (asked with LocateTopic, over a
   * connection with the same TLS, token and channel settings), and follow it when the topic
   * moves. Without it the broker at `address` forwards them. Default false.
   */
  readonly directToOwner?: boolean;
}

type PublisherClient = ServiceClient<(typeof PublisherService)["method"]>;

/**
 * Channel options the client starts from: no receive-size limit below the broker's largest
 * pack, keepalive pings every 30 s (the broker allows one per 10 s), quick reconnects, and a
 * 4 MiB HTTP/2 window (FLOW_CONTROL_WINDOW_BYTES: grpc-js's 64 KiB default halved drains).
 */
export const DEFAULT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...FLOW_CONTROL_OPTIONS,
  "grpc.max_receive_message_length": 256 << 20,
  "grpc.max_send_message_length": 256 << 20,
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 5000,
};

interface Closable {
  close(): Promise<void>;
}

/**
 * A connection to one NerveBus broker (one gRPC channel shared by every publisher, subscriber
 * and admin call made through it). close() stops subscribers gracefully, flushes publishers
 * and closes the channel.
 */
export class NerveBusClient {
  /** HOST:PORT of the broker. */
  readonly address: string;
  /** Typed wrappers for every AdminService RPC. */
  readonly admin: Admin;
  readonly #channel: grpc.Channel;
  readonly #publishers: Route<PublisherClient>;
  readonly #subscribers: Route<SubscriberClient>;
  readonly #router: OwnerRouter<PublisherClient, SubscriberClient> | undefined;
  readonly #publisherOptions: PublisherOptions | undefined;
  readonly #open = new Set<Closable>();
  #defaultPublisher: Publisher | undefined;
  #closing: Promise<void> | undefined;

  /** Connects (lazily, on the first call) to the broker at `address` (HOST:PORT). */
  constructor(address: string, options: ClientOptions = {}) {
    this.address = address;
    if (options.credentials !== undefined && (options.tls !== undefined || options.token !== undefined))
      throw new TypeError("give either credentials or tls/token, not both");
    const credentials = options.credentials ?? channelCredentials(options.tls, options.token);
    const channelOptions = {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...serverNameOptions(options.tls),
      ...options.channelOptions,
    };
    const interceptors = options.interceptors ?? [];
    this.#channel = new grpc.Channel(address, credentials, channelOptions);
    const home = connection(address, this.#channel, interceptors);
    this.admin = new Admin(
      createClient(AdminService, address, undefined, { channelOverride: this.#channel, interceptors }),
      options.adminTimeoutMs ?? 30_000,
    );
    if (options.directToOwner === true) {
      const router = new OwnerRouter(
        home,
        address,
        (to) => connection(to, new grpc.Channel(to, credentials, channelOptions), interceptors),
        (topic) => this.admin.locateTopic(topic, { timeoutMs: 5000 }),
      );
      this.#router = router;
      this.#publishers = router.publishers;
      this.#subscribers = router.subscribers;
    } else {
      this.#publishers = fixedRoute(home.publisher);
      this.#subscribers = fixedRoute(home.subscriber);
    }
    this.#publisherOptions = options.publisher;
  }

  /** A new publisher with its own batches and settings; client.close() closes it too. */
  publisher(options: PublisherOptions = {}): Publisher {
    this.#checkOpen();
    const publisher: Publisher = new Publisher(
      this.#publishers,
      options,
      () => this.#open.delete(publisher),
      this.address,
    );
    this.#open.add(publisher);
    return publisher;
  }

  /**
   * A Publish stream on `topic` (see StreamPublisher): batches confirmed in order under the
   * broker's credit, for high-rate producers; client.close() closes it too.
   */
  streamPublisher(topic: string, options: StreamPublisherOptions = {}): StreamPublisher {
    this.#checkOpen();
    const stream: StreamPublisher = new StreamPublisher(this.#publishers, topic, options, () =>
      this.#open.delete(stream),
    );
    this.#open.add(stream);
    return stream;
  }

  /** Publishes one message through the client's default publisher (see Publisher.publish). */
  publish(topic: string, message: PublishMessage, options?: PublishOptions): Promise<PublishResult> {
    if (this.#closing !== undefined) return Promise.reject(closedError());
    this.#defaultPublisher ??= this.publisher(this.#publisherOptions);
    return this.#defaultPublisher.publish(topic, message, options);
  }

  /** Sends what the default publisher buffers and waits for it. */
  async flush(): Promise<void> {
    await this.#defaultPublisher?.flush();
  }

  /**
   * Runs `handler` for each message of `subscription` on `topic` (created on first use unless
   * the broker forbids it). The subscriber starts connecting at once; await `ready` to know it
   * is attached, and close() it (or abort `options.signal`) to stop it.
   */
  subscribe(
    topic: string,
    subscription: string,
    handler: MessageHandler,
    options: SubscriberOptions = {},
  ): Subscriber {
    this.#checkOpen();
    const subscriber: Subscriber = new Subscriber(
      this.#subscribers,
      topic,
      subscription,
      handler,
      options,
      () => this.#open.delete(subscriber),
      this.address,
    );
    this.#open.add(subscriber);
    return subscriber;
  }

  /** The messages of `subscription` on `topic` as an async iterator; settle each one yourself. */
  messages(topic: string, subscription: string, options: MessageStreamOptions = {}): MessageStream {
    this.#checkOpen();
    const stream: MessageStream = new MessageStream(
      this.#subscribers,
      topic,
      subscription,
      options,
      () => this.#open.delete(stream),
      this.address,
    );
    this.#open.add(stream);
    return stream;
  }

  /**
   * Closes everything opened through the client — subscribers and message streams stop
   * gracefully, publishers flush — then closes the channel. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#open].map((c) => c.close()));
      this.#router?.close();
      this.#channel.close();
    })();
    return this.#closing;
  }

  /**
   * With `directToOwner`: HOST:PORT of the broker the client sends `topic`'s calls to as last
   * learnt, or "" for the broker at `address` (it owns the topic, or its owner is not known yet).
   */
  ownerOf(topic: string): string {
    return this.#router?.ownerOf(topic) ?? "";
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw closedError();
  }
}

function closedError(): NerveBusError {
  return new NerveBusError(StatusCode.FAILED_PRECONDITION, "client is closed");
}

/** The publisher and subscriber clients of one broker, on `channel`. */
function connection(
  address: string,
  channel: grpc.Channel,
  interceptors: grpc.Interceptor[],
): Connection<PublisherClient, SubscriberClient> {
  // Every service runs on the one channel; its credentials are the ones that count.
  const shared: grpc.ClientOptions = { channelOverride: channel, interceptors };
  return {
    publisher: createClient(PublisherService, address, undefined, shared, {
      requestSerializers: { sendPack: encodeSendPackRequest, publish: encodePublishRequest },
    }),
    subscriber: createSubscriberClient(address, shared),
    close: () => channel.close(),
  };
}
