import { createServer } from "node:net";
import * as grpc from "@grpc/grpc-js";

let counter = 0;

/** A fresh topic or subscription name for one test. */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}-${Date.now().toString(36)}`;
}

/**
 * A broker that cannot be reached: a listener the test holds that resets every connection at
 * once (gRPC: UNAVAILABLE). A fixed port such as 1 may be bound by any process on the machine;
 * this one is taken by no other while the test holds it. `close()` it after the test.
 */
export async function unreachableBroker(): Promise<{ address: string; close(): Promise<void> }> {
  const server = createServer((socket) => socket.resetAndDestroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true (or a truthy value), failing after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    await delay(25);
  }
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One SendPack call as an interceptor saw it. */
export interface PackCall {
  readonly topic: string;
  readonly count: number;
  readonly keys: ReadonlySet<string>;
  readonly startedAt: number;
  endedAt: number | undefined;
  code: grpc.status | undefined;
}

/**
 * A grpc-js interceptor recording every SendPack call (topic, size, ordering keys, timing,
 * status). `failFirst` turns the first N successful answers into `lostAs` (UNAVAILABLE by
 * default), as a lost response would look to the client.
 */
export function packRecorder(
  failFirst = 0,
  lostAs: grpc.status = grpc.status.UNAVAILABLE,
): { interceptor: grpc.Interceptor; calls: PackCall[] } {
  const calls: PackCall[] = [];
  let toFail = failFirst;
  const interceptor: grpc.Interceptor = (options, next) => {
    if (!options.method_definition.path.endsWith("/SendPack"))
      return new grpc.InterceptingCall(next(options));
    let call: PackCall | undefined;
    return new grpc.InterceptingCall(next(options), {
      sendMessage(message: { topic: string; messages: { orderingKey: string }[] }, nextSend) {
        call = {
          topic: message.topic,
          count: message.messages.length,
          keys: new Set(message.messages.map((m) => m.orderingKey).filter((k) => k !== "")),
          startedAt: Date.now(),
          endedAt: undefined,
          code: undefined,
        };
        calls.push(call);
        nextSend(message);
      },
      start(metadata, _listener, nextStart) {
        nextStart(metadata, {
          onReceiveStatus(status, nextStatus) {
            let s = status;
            if (s.code === grpc.status.OK && toFail > 0) {
              toFail--;
              s = { ...s, code: lostAs, details: "injected: response lost" };
            }
            if (call !== undefined) {
              call.endedAt = Date.now();
              call.code = s.code;
            }
            nextStatus(s);
          },
        });
      },
    });
  };
  return { interceptor, calls };
}
