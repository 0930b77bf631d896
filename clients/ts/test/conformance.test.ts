/*
 * The client conformance suite: test/client-conformance/scenarios.json, run by the TypeScript
 * client. The Go and Python clients run the same scenarios with the same expectations
 * (docs/clients.md); a scenario in the file without an implementation here fails.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import {
  DEFAULT_RECONNECT_CODES,
  DEFAULT_RETRYABLE_CODES,
  NerveBusClient,
  NerveBusError,
  PUBLISHER_DEFAULTS,
  type Publisher,
  type PublishResult,
  RECEIVE_DEFAULTS,
  type ReceivedMessage,
  StatusCode,
  SUBSCRIBER_DEFAULTS,
} from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, eventually, packRecorder, uniqueName } from "./support/helpers.js";

interface ScenarioMessage {
  readonly data: string;
  readonly attributes?: Record<string, string>;
  readonly ordering_key?: string;
}

/** The union of the scenarios' fields. */
interface Scenario {
  readonly id: string;
  readonly topic?: string;
  readonly linger_ms?: number;
  readonly publish?: number;
  readonly messages?: ScenarioMessage[];
  readonly then_publish?: ScenarioMessage;
  readonly after_resume_publish?: ScenarioMessage;
  readonly outstanding_max_messages?: number;
  readonly confirm_acks?: boolean;
  readonly ack_deadline_ms?: number;
  readonly min_backoff_ms?: number;
  readonly max_backoff_ms?: number;
  readonly extend_to_ms?: number;
  // biome-ignore lint/suspicious/noExplicitAny: the expectations differ per scenario
  readonly expect?: any;
}

const file = JSON.parse(
  readFileSync(new URL("../../../../test/client-conformance/scenarios.json", import.meta.url), "utf8"),
) as {
  defaults: { publisher: Record<string, unknown>; subscriber: Record<string, unknown> };
  scenarios: Scenario[];
};

let broker: TestBroker;
before(async () => {
  broker = await TestBroker.start();
});
after(async () => {
  await broker.dispose();
});

/** Runs `body` with a client of the test broker, closed afterwards. */
async function withClient<T>(
  body: (client: NerveBusClient) => Promise<T>,
  options?: ConstructorParameters<typeof NerveBusClient>[1],
): Promise<T> {
  const client = new NerveBusClient(broker.address, options);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

/** A publish's or an ack's outcome, named as the scenarios name it. */
function outcome(r: PromiseSettledResult<unknown>): string {
  if (r.status === "fulfilled") return "OK";
  const err = r.reason as unknown;
  if (err instanceof Error && err.name === "AbortError") return "CANCELLED";
  if (err instanceof NerveBusError) {
    if (err.code === StatusCode.FAILED_PRECONDITION && /already settled/.test(err.details))
      return "ALREADY_SETTLED";
    return err.codeName;
  }
  return String(err);
}

function send(publisher: Publisher, topic: string, m: ScenarioMessage): Promise<PublishResult> {
  return publisher.publish(topic, { data: m.data, attributes: m.attributes, orderingKey: m.ordering_key });
}

/** Publishes every message of a scenario (without waiting in between), flushes, settles them. */
async function publishAll(
  publisher: Publisher,
  topic: string,
  messages: readonly ScenarioMessage[],
): Promise<PromiseSettledResult<PublishResult>[]> {
  const results = messages.map((m) => send(publisher, topic, m));
  await publisher.flush();
  return Promise.allSettled(results);
}

async function lastSeq(client: NerveBusClient, topic: string): Promise<number> {
  return (await client.admin.stats(topic)).topic.lastSeq;
}

async function subscriptionStats(client: NerveBusClient, topic: string, name: string) {
  const sub = (await client.admin.stats(topic)).subscriptions.find((s) => s.name === name);
  assert.ok(sub, `no subscription ${name}`);
  return sub;
}

/** Creates the topic and its subscriptions (from the earliest message), then publishes. */
async function createSubscribed(
  client: NerveBusClient,
  topic: string,
  subscriptions: readonly string[],
  messages: readonly string[],
  config: { ackDeadlineMs?: number; minBackoffMs?: number; maxBackoffMs?: number } = {},
): Promise<void> {
  await client.admin.createTopic(topic);
  for (const name of subscriptions)
    await client.admin.createSubscription(topic, name, { ...config, start: "earliest" });
  for (const data of messages) await client.publish(topic, { data });
}

const implementations: Record<string, (sc: Scenario) => Promise<void>> = {
  async defaults() {
    const p = file.defaults.publisher;
    assert.deepEqual(
      {
        pack_max_messages: PUBLISHER_DEFAULTS.maxBatchMessages,
        pack_max_bytes: PUBLISHER_DEFAULTS.maxBatchBytes,
        linger_ms: PUBLISHER_DEFAULTS.lingerMs,
        packs_in_flight: PUBLISHER_DEFAULTS.maxInflightBatches,
        outstanding_max_messages: PUBLISHER_DEFAULTS.maxOutstandingMessages,
        outstanding_max_bytes: PUBLISHER_DEFAULTS.maxOutstandingBytes,
        attempt_timeout_ms: PUBLISHER_DEFAULTS.callTimeoutMs,
        retry_total_timeout_ms: PUBLISHER_DEFAULTS.retry.totalTimeoutMs,
        retry_initial_backoff_ms: PUBLISHER_DEFAULTS.retry.initialMs,
        retry_max_backoff_ms: PUBLISHER_DEFAULTS.retry.maxMs,
        retry_multiplier: PUBLISHER_DEFAULTS.retry.multiplier,
      },
      Object.fromEntries(Object.entries(p).filter(([k]) => k !== "retried_codes")),
    );
    for (const name of p.retried_codes as string[])
      assert.ok(DEFAULT_RETRYABLE_CODES.includes(StatusCode[name as keyof typeof StatusCode]), name);

    const s = file.defaults.subscriber;
    assert.deepEqual(
      {
        window_messages: RECEIVE_DEFAULTS.maxMessages,
        window_bytes: RECEIVE_DEFAULTS.maxBytes,
        // subscribe() runs handlers up to the window unless `concurrency` says otherwise.
        handlers_at_once: RECEIVE_DEFAULTS.maxMessages,
        max_extension_ms: RECEIVE_DEFAULTS.maxExtensionMs,
        shutdown_timeout_ms: SUBSCRIBER_DEFAULTS.closeTimeoutMs,
        confirm_acks: RECEIVE_DEFAULTS.confirmAcks,
        reconnect_initial_backoff_ms: RECEIVE_DEFAULTS.reconnectBackoff.initialMs,
        reconnect_max_backoff_ms: RECEIVE_DEFAULTS.reconnectBackoff.maxMs,
        handler_error_nack_delay_ms: SUBSCRIBER_DEFAULTS.nackDelayMs,
      },
      Object.fromEntries(
        Object.entries(s).filter(([k]) => k !== "reconnect_codes" && k !== "handler_error_nack_delay_note"),
      ),
    );
    for (const name of s.reconnect_codes as string[])
      assert.ok(DEFAULT_RECONNECT_CODES.includes(StatusCode[name as keyof typeof StatusCode]), name);
  },

  async "pack-count-threshold"(sc) {
    const recorder = packRecorder();
    await withClient(
      async (client) => {
        const topic = uniqueName("conf-packs");
        const publisher = client.publisher({ lingerMs: sc.linger_ms });
        const results = Array.from({ length: sc.publish! }, (_, i) =>
          publisher.publish(topic, { data: `m${i}` }),
        );
        await publisher.close();
        await Promise.all(results);
        const sizes = recorder.calls.map((c) => c.count).sort((a, b) => a - b);
        assert.deepEqual(
          sizes,
          [...(sc.expect.packs as number[])].sort((a, b) => a - b),
        );
        assert.equal(await lastSeq(client, topic), sc.expect.last_seq);
      },
      { interceptors: [recorder.interceptor] },
    );
  },

  async "bad-message-fails-alone"(sc) {
    await withClient(async (client) => {
      const topic = uniqueName("conf-bad");
      const results = await publishAll(client.publisher({ lingerMs: sc.linger_ms }), topic, sc.messages!);
      const appended: [number, string][] = [];
      results.forEach((r, i) => {
        const failure = sc.expect.failed[String(i)] as string | undefined;
        if (failure === undefined) {
          assert.equal(r.status, "fulfilled", `message ${i}: ${outcome(r)}`);
          appended.push([(r as PromiseFulfilledResult<PublishResult>).value.seq, sc.messages![i]!.data]);
          return;
        }
        assert.equal(outcome(r), failure);
        const text = String((r as PromiseRejectedResult).reason);
        assert.ok(text.includes(sc.expect.error_mentions), text);
        assert.ok(!text.includes(sc.expect.error_does_not_mention), text);
      });
      appended.sort((a, b) => a[0] - b[0]);
      assert.deepEqual(
        appended.map(([, d]) => d),
        sc.expect.appended_in_order,
      );
      const seqs = appended.map(([s]) => s);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => seqs[0]! + i),
      );
      assert.equal(await lastSeq(client, topic), seqs.length);
    });
  },

  async "pack-failure-fails-all"(sc) {
    await withClient(async (client) => {
      const results = await publishAll(client.publisher({ lingerMs: sc.linger_ms }), sc.topic!, sc.messages!);
      assert.deepEqual(
        results.map(outcome),
        results.map(() => sc.expect.every_message_fails_with),
      );
    });
  },

  async "ordering-key-pause-resume"(sc) {
    await withClient(async (client) => {
      const topic = uniqueName("conf-keys");
      const publisher = client.publisher({ lingerMs: sc.linger_ms });
      const results = await publishAll(publisher, topic, sc.messages!);
      const byData = new Map(sc.messages!.map((m, i) => [m.data, results[i]!]));
      assert.deepEqual(Object.fromEntries([...byData].map(([d, r]) => [d, outcome(r)])), sc.expect.results);
      const [then] = await Promise.allSettled([send(publisher, topic, sc.then_publish!)]);
      assert.equal(outcome(then!), sc.expect.then);
      const resumed = sc.after_resume_publish!;
      publisher.resumeOrderingKey(topic, resumed.ordering_key!);
      const [afterResume] = await publishAll(publisher, topic, [resumed]);
      assert.equal(outcome(afterResume!), sc.expect.after_resume);
      byData.set(resumed.data, afterResume!);
      for (const datas of Object.values(sc.expect.appended_per_key as Record<string, string[]>)) {
        const seqs = datas.map((d) => {
          const r = byData.get(d)!;
          return r.status === "fulfilled" ? r.value.seq : 0;
        });
        assert.ok(seqs[0]! > 0 && seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `${datas} at ${seqs}`);
      }
      assert.equal(await lastSeq(client, topic), sc.expect.last_seq);
    });
  },

  async "flow-control-blocks"(sc) {
    await withClient(async (client) => {
      const topic = uniqueName("conf-flow");
      const publisher = client.publisher({
        lingerMs: sc.linger_ms,
        maxOutstandingMessages: sc.outstanding_max_messages,
      });
      const a = publisher.publish(topic, { data: "a" });
      const b = publisher.publish(topic, { data: "b" });
      const cancelC = new AbortController();
      const c = publisher.publish(topic, { data: "c" }, { signal: cancelC.signal }); // waits for room
      const flushed = publisher.flush(); // sends a and b (and c, were it in the batch)
      cancelC.abort();
      await flushed;
      const d = publisher.publish(topic, { data: "d" });
      await publisher.flush();
      const [ra, rb, rc, rd] = await Promise.allSettled([a, b, c, d]);
      assert.deepEqual(
        { a: outcome(ra!), b: outcome(rb!), c: outcome(rc!), d: outcome(rd!) },
        { a: sc.expect.a, b: sc.expect.b, c: sc.expect.c, d: sc.expect.d },
      );
      const seqs = [ra, rb, rd].map((r) => (r as PromiseFulfilledResult<PublishResult>).value.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
      );
      assert.equal(seqs[2], sc.expect.last_seq);
      assert.equal(await lastSeq(client, topic), sc.expect.last_seq);
    });
  },

  async "ack-confirmation"(sc) {
    await withClient(async (client) => {
      const topic = uniqueName("conf-ack");
      await createSubscribed(
        client,
        topic,
        ["s"],
        sc.messages!.map((m) => m.data),
      );
      const outcomes = deferred<[string, string]>();
      const sub = client.subscribe(
        topic,
        "s",
        async (m) => {
          const [first] = await Promise.allSettled([m.ackWithResult()]);
          const [second] = await Promise.allSettled([m.ackWithResult()]);
          outcomes.resolve([outcome(first!), outcome(second!)]);
        },
        { confirmAcks: sc.confirm_acks },
      );
      assert.deepEqual(await outcomes.promise, [sc.expect.first, sc.expect.second]);
      await sub.close();
      await eventually(async () => {
        const s = await subscriptionStats(client, topic, "s");
        return s.floor === sc.expect.floor && s.backlog === sc.expect.backlog;
      });
    });
  },

  async "manual-lease-extension"(sc) {
    await withClient(async (client) => {
      const topic = uniqueName("conf-lease");
      await createSubscribed(client, topic, ["extended", "control"], ["x"], {
        ackDeadlineMs: sc.ack_deadline_ms,
        minBackoffMs: sc.min_backoff_ms,
        maxBackoffMs: sc.max_backoff_ms,
      });
      const release = deferred();
      const held = deferred<ReceivedMessage>();
      const noAutoExtension = { maxExtensionMs: 0 };
      const extended = client.subscribe(
        topic,
        "extended",
        async (m) => {
          if (m.attempt === 1) m.extendDeadline(sc.extend_to_ms);
          held.resolve(m);
          await release.promise; // returning acks it
        },
        noAutoExtension,
      );
      await held.promise;
      // The control holds its copy without extension: each ack deadline, the broker takes it back.
      const control = client.subscribe(topic, "control", () => release.promise, noAutoExtension);
      await eventually(
        async () =>
          (await subscriptionStats(client, topic, "control")).redelivered >=
          sc.expect.control_redelivered_at_least,
        30_000,
        "the control's redeliveries",
      );
      const ext = await subscriptionStats(client, topic, "extended");
      assert.deepEqual(
        { redelivered: ext.redelivered, inFlight: ext.inFlight },
        { redelivered: sc.expect.extended_redelivered, inFlight: sc.expect.extended_in_flight },
      );
      release.resolve();
      await eventually(
        async () =>
          (await subscriptionStats(client, topic, "extended")).floor === sc.expect.extended_floor_after_ack,
      );
      await Promise.all([extended.close(), control.close()]);
    });
  },
};

test("every scenario of scenarios.json has a TypeScript implementation", () => {
  assert.deepEqual(file.scenarios.map((sc) => sc.id).sort(), Object.keys(implementations).sort());
});

for (const sc of file.scenarios) {
  test(`conformance: ${sc.id}`, async () => {
    const run = implementations[sc.id];
    assert.ok(run, `scenario ${sc.id} has no TypeScript implementation`);
    await run(sc);
  });
}
