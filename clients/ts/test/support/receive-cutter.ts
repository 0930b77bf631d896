import * as grpc from "@grpc/grpc-js";

/** What the interceptor sees of a ReceiveRequest. */
export interface SeenRequest {
  readonly ackSeqs: readonly bigint[];
  readonly terminateSeqs: readonly bigint[];
}

/** One Receive stream as the interceptor saw it: its deliveries, in order. */
export interface SeenStream {
  readonly deliveries: { seq: number; attempt: number }[];
}

/**
 * A grpc-js interceptor on Receive streams that lets a test end a stream as a lost connection
 * would, at a point it chooses: cut() ends the current stream now; cutBefore(match) ends it
 * instead of sending the next request that matches, so that request never reaches the broker.
 * The client sees UNAVAILABLE and reconnects; the broker sees the stream cancelled and
 * redelivers what it had leased to it. `streams` records what each stream delivered.
 * `hideHeartbeats` takes the heartbeats out of the responses, as if the stream were never idle
 * (the broker sends them only then), so the client learns the subscription's floor only on
 * subscribe.
 */
export function receiveCutter(settings: { hideHeartbeats?: boolean } = {}): {
  interceptor: grpc.Interceptor;
  streams: SeenStream[];
  cut(): void;
  cutBefore(match: (request: SeenRequest) => boolean): void;
} {
  const streams: SeenStream[] = [];
  let current: grpc.InterceptingCall | undefined;
  let cutMatch: ((request: SeenRequest) => boolean) | undefined;
  const lose = (call: grpc.InterceptingCall) =>
    call.cancelWithStatus(grpc.status.UNAVAILABLE, "injected: connection lost");
  const interceptor: grpc.Interceptor = (options, next) => {
    if (!options.method_definition.path.endsWith("/Receive")) return new grpc.InterceptingCall(next(options));
    const seen: SeenStream = { deliveries: [] };
    streams.push(seen);
    const call: grpc.InterceptingCall = new grpc.InterceptingCall(next(options), {
      start(metadata, _listener, nextStart) {
        nextStart(metadata, {
          onReceiveMessage(
            message: { deliveries: { seq: bigint; attempt: number }[]; heartbeat?: unknown },
            nextMessage,
          ) {
            if (settings.hideHeartbeats) message.heartbeat = undefined;
            for (const d of message.deliveries)
              seen.deliveries.push({ seq: Number(d.seq), attempt: d.attempt });
            nextMessage(message);
          },
        });
      },
      sendMessage(message: SeenRequest, nextSend) {
        if (cutMatch?.(message)) {
          cutMatch = undefined;
          lose(call);
          return;
        }
        nextSend(message);
      },
    });
    current = call;
    return call;
  };
  return {
    interceptor,
    streams,
    cut() {
      if (current === undefined) throw new Error("no Receive stream to cut");
      lose(current);
    },
    cutBefore(match) {
      cutMatch = match;
    },
  };
}
