import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { type Delivery, MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  PublisherService,
  SendPackRequestSchema,
  type SendPackResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import {
  type ReceiveRequest,
  ReceiveRequestSchema,
  type ReceiveResponse,
  StartPoint,
  SubscriberService,
  SubscribeSchema,
  WindowSchema,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { createClient, type ServiceClient, unary } from "../../src/api/index.js";
import { type Config, loadConfig } from "../../src/config/index.js";
import { type NerveBus, startNerveBus } from "../../src/nervebus.js";
import type { Logger } from "../../src/telemetry/index.js";

/** Collects warnings and errors so tests can show them on failure. */
export const quietLog: Logger = (level, msg, fields) => {
  if (level === "error" || process.env.NERVEBUS_TEST_LOG)
    process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
};

/** Starts an in-process broker on 127.0.0.1:0 with the given store and overrides. */
export async function startBroker(store: string, overrides: Partial<Config> = {}): Promise<NerveBus> {
  return startNerveBus(testConfig(store, overrides), quietLog);
}

/** A log line as startLoggingBroker keeps it. */
export type LogLine = { level: string; msg: string; [field: string]: unknown };

/** startBroker, keeping every log line in `lines` (for tests of what the broker logs). */
export async function startLoggingBroker(
  store: string,
  lines: LogLine[],
  overrides: Partial<Config> = {},
): Promise<NerveBus> {
  return startNerveBus(testConfig(store, overrides), (level, msg, fields) => {
    lines.push({ level, msg, ...fields });
  });
}

function testConfig(store: string, overrides: Partial<Config>): Config {
  return {
    ...loadConfig({}, {}),
    listen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    store,
    shutdownGraceMs: 2000,
    ...overrides,
  };
}

type Publisher = ServiceClient<(typeof PublisherService)["method"]>;
type Subscriber = ServiceClient<(typeof SubscriberService)["method"]>;
type Admin = ServiceClient<(typeof AdminService)["method"]>;

/** Promise-returning AdminService calls: `client.call("getTopic", { name: "t" })`. */
type AdminMethods = (typeof AdminService)["method"];

/** A message as tests write it: any Message fields. */
export type MessageInit = NonNullable<Parameters<typeof create<typeof MessageSchema>>[1]>;

/** A real gRPC client of a broker, with helpers for tests. */
export class TestClient {
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
  readonly admin: Admin;

  /**
   * `channelOptions` are added to each of its three channels' options; plaintext unless
   * `credentials` say otherwise (TLS, tokens).
   */
  constructor(
    readonly address: string,
    channelOptions: grpc.ChannelOptions = {},
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    const options = { "grpc.max_receive_message_length": 64 << 20, ...channelOptions };
    this.publisher = createClient(PublisherService, address, credentials, options);
    this.subscriber = createClient(SubscriberService, address, credentials, options);
    this.admin = createClient(AdminService, address, credentials, options);
  }

  /** One AdminService call, by method name, with a plain request object. */
  adminCall<K extends keyof AdminMethods>(
    method: K,
    request: Parameters<typeof create<AdminMethods[K]["input"]>>[1],
  ): Promise<import("@bufbuild/protobuf").MessageShape<AdminMethods[K]["output"]>> {
    const desc = AdminService.method[method];
    const fn = (this.admin[method] as unknown as (...a: unknown[]) => grpc.ClientUnaryCall).bind(this.admin);
    return unary(fn as never, create(desc.input, request as never), { deadline: Date.now() + 20_000 });
  }

  /** Publishes strings (or full message inits) as one pack. */
  publish(topic: string, messages: (string | MessageInit)[], deadlineMs = 30_000): Promise<SendPackResponse> {
    const wire = messages.map((m) =>
      create(MessageSchema, typeof m === "string" ? { data: Buffer.from(m) } : m),
    );
    return unary(
      this.publisher.sendPack.bind(this.publisher),
      create(SendPackRequestSchema, { topic, messages: wire }),
      {
        deadline: Date.now() + deadlineMs,
      },
    );
  }

  /** Opens a Receive stream and subscribes. */
  receive(
    topic: string,
    subscription: string,
    opts: {
      maxMessages?: number;
      maxBytes?: number;
      from?: "earliest" | "latest" | number;
      ackDeadlineMs?: number;
      confirmAcks?: boolean;
    } = {},
  ): TestStream {
    const call = this.subscriber.receive();
    const from = opts.from ?? "earliest";
    const start =
      typeof from === "number"
        ? { case: "startSeq" as const, value: BigInt(from) }
        : {
            case: "startPoint" as const,
            value: from === "earliest" ? StartPoint.EARLIEST : StartPoint.LATEST,
          };
    const stream = new TestStream(call);
    call.write(
      create(ReceiveRequestSchema, {
        subscribe: create(SubscribeSchema, {
          topic,
          subscription,
          window: create(WindowSchema, {
            maxMessages: opts.maxMessages ?? 1000,
            maxBytes: BigInt(opts.maxBytes ?? 0),
          }),
          start,
          confirmAcks: opts.confirmAcks ?? false,
          ...(opts.ackDeadlineMs
            ? {
                ackDeadline: {
                  seconds: BigInt(Math.floor(opts.ackDeadlineMs / 1000)),
                  nanos: (opts.ackDeadlineMs % 1000) * 1e6,
                },
              }
            : {}),
        }),
      }),
    );
    return stream;
  }

  close(): void {
    this.publisher.close();
    this.subscriber.close();
    this.admin.close();
  }
}

/** A Receive stream that records everything the server sends. */
export class TestStream {
  readonly deliveries: Delivery[] = [];
  readonly responses: ReceiveResponse[] = [];
  error: grpc.ServiceError | undefined;
  ended = false;
  readonly #waiters: (() => void)[] = [];

  constructor(readonly call: grpc.ClientDuplexStream<ReceiveRequest, ReceiveResponse>) {
    call.on("data", (r: ReceiveResponse) => {
      this.responses.push(r);
      this.deliveries.push(...r.deliveries);
      this.#wake();
    });
    call.on("error", (err: grpc.ServiceError) => {
      this.error = err;
      this.ended = true;
      this.#wake();
    });
    call.on("status", () => {
      this.ended = true;
      this.#wake();
    });
  }

  /** Resolves once `predicate` holds, or rejects after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 20_000, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}: ${this.deliveries.length} deliveries, error ${this.error?.details ?? "none"}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  ack(seqs: (bigint | number)[]): void {
    if (seqs.length === 0) return;
    this.call.write(create(ReceiveRequestSchema, { ackSeqs: seqs.map((s) => BigInt(s)) }));
  }

  send(req: Parameters<typeof create<typeof ReceiveRequestSchema>>[1]): void {
    this.call.write(create(ReceiveRequestSchema, req));
  }

  /** Cancels the stream from the client side (like a consumer crash). */
  cancel(): void {
    this.call.cancel();
  }

  /** Half-closes and waits for the server to end the stream. */
  async end(): Promise<void> {
    this.call.end();
    await this.until(() => this.ended, 10_000, "stream end");
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

export function seqsOf(deliveries: readonly Delivery[]): number[] {
  return deliveries.map((d) => Number(d.seq));
}

/** What a test body gets from withBroker. */
export interface BrokerContext {
  readonly bus: NerveBus;
  readonly client: TestClient;
  readonly store: string;
  /** Stops the broker and starts a new one on the same store. */
  restart(): Promise<void>;
}

/** A fresh store URL (own database or file) named after the test. */
export type FreshStore = (name: string) => Promise<string>;

/** Runs `fn` against a broker on a fresh store, always stopping both. */
export async function withBroker(
  fresh: FreshStore,
  name: string,
  overrides: Partial<Config>,
  fn: (ctx: BrokerContext) => Promise<void>,
): Promise<void> {
  const store = await fresh(name);
  let bus = await startBroker(store, overrides);
  let client = new TestClient(bus.address);
  const ctx = {
    get bus() {
      return bus;
    },
    get client() {
      return client;
    },
    store,
    async restart() {
      client.close();
      await bus.stop();
      bus = await startBroker(store, overrides);
      client = new TestClient(bus.address);
    },
  };
  try {
    await fn(ctx);
  } finally {
    client.close();
    await bus.stop();
  }
}

/** A client of the standard gRPC health service. */
export type HealthClient = grpc.Client & {
  check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
  ): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

export function healthClient(address: string): HealthClient {
  const Health = grpc.makeGenericClientConstructor(healthService, "Health");
  return new Health(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

/** The health status of `service` ("" for the whole server). */
export function healthStatus(client: HealthClient, service = ""): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (err, r) => (err ? reject(err) : resolve(r!.status))),
  );
}
