import type { ServerHttp2Stream } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { NerveBusError } from "../core/index.js";
import { toGrpcStatus } from "./status.js";

/** One call the server has taken and not yet finished. */
interface OpenCall {
  readonly call: grpc.ServerInterceptingCall;
  readonly streaming: boolean;
  /** A call to one of the broker's own services. */
  readonly ours: boolean;
  /** Its status went to grpc-js (it may still be on the way out). */
  answered: boolean;
}

/**
 * Every call a gRPC server has in progress, for a graceful shutdown that answers each one before
 * its connection goes. A call counts from the moment its stream arrives (the request may still be
 * on the way, so no handler runs yet) until its HTTP/2 stream has closed, its last frame handed to
 * the connection: grpc-js answers a unary call in steps (message, then trailers once the message
 * is out), and closing the connection between them cut answers off with RST_STREAM CANCEL, an
 * unknown outcome that clients did not retry (test/integration/shutdown.test.ts).
 */
export class CallDrain {
  readonly #open = new Set<OpenCall>();
  #idleWaiters: (() => void)[] = [];
  #draining = false;

  /**
   * `ours(path)`: whether the method belongs to the broker's own services. Calls to them that
   * arrive while draining get UNAVAILABLE; other services (health, reflection) keep answering.
   */
  constructor(private readonly ours: (path: string) => boolean) {}

  /** The server interceptor that tracks calls; it must be the server's first interceptor. */
  readonly interceptor: grpc.ServerInterceptor = (method, next) => {
    const finish = () => {
      if (this.#open.delete(open) && this.#open.size === 0) this.#wake();
    };
    // grpc-js 1.14 gives the first interceptor its base call, which holds the HTTP/2 stream: its
    // "close" is the moment the answer is out. Should that change, the end of the call (status
    // handed to HTTP/2) is the next best signal.
    const held = (next as unknown as { stream?: ServerHttp2Stream }).stream;
    const stream = typeof held?.once === "function" ? held : undefined;
    const call = new grpc.ServerInterceptingCall(next, {
      start: (startNext) => {
        if (this.#draining) {
          // A connection accepted just as the server stopped listening was not among those
          // grpc-js sent GOAWAY to: send it now, so that it too closes once its calls are done.
          if (stream?.session?.closed === false) stream.session.close();
          if (open.ours) {
            call.sendStatus(shuttingDown("broker is shutting down; retry"));
            if (!stream) finish();
            return;
          }
        }
        startNext(stream ? undefined : { onCancel: finish });
      },
      sendStatus: (status, statusNext) => {
        open.answered = true;
        statusNext(status);
      },
    });
    const open: OpenCall = {
      call,
      streaming: method.requestStream || method.responseStream,
      ours: this.ours(method.path),
      answered: false,
    };
    this.#open.add(open);
    stream?.once("close", finish);
    // A stream the client already reset emits no "close" any more.
    if (stream?.closed || stream?.destroyed) finish();
    return call;
  };

  /** From now on, calls to the broker's own services are answered UNAVAILABLE before any handler runs. */
  startDraining(): void {
    this.#draining = true;
  }

  /**
   * Ends the streams of other services (health Watch, reflection) with UNAVAILABLE: their
   * handlers cannot be told to, and they would hold their connections open. The broker ends its
   * own streams itself, after what they have queued.
   */
  endOtherStreams(details: string): void {
    for (const o of this.#open)
      if (o.streaming && !o.ours && !o.answered) o.call.sendStatus(shuttingDown(details));
  }

  /**
   * Answers every unary call not answered yet with UNAVAILABLE. A handler that answers later is
   * ignored: grpc-js drops what comes after a status. (A stream still open is left to the
   * connection's end: writing its status past what its handler still has queued is not safe.)
   */
  answerUnary(details: string): void {
    for (const o of this.#open) if (!o.streaming && !o.answered) o.call.sendStatus(shuttingDown(details));
  }

  /** Resolves once no call is in progress (at once when none is). */
  idle(): Promise<void> {
    if (this.#open.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #wake(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}

function shuttingDown(details: string): grpc.StatusObject {
  const s = toGrpcStatus(new NerveBusError("unavailable", details));
  return { code: s.code, details: s.details, metadata: s.metadata ?? new grpc.Metadata() };
}
