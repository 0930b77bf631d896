import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { MessageResult_Outcome as Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { type FreshStore, seqsOf, startBroker, TestClient } from "../support/broker.js";

/** Rewrites the body of `topic`'s stored run that starts at `firstSeq` (the broker is stopped). */
export type CorruptRow = (
  url: string,
  topic: string,
  firstSeq: number,
  mutate: (body: Buffer) => Buffer,
) => Promise<void>;

/** Where each record of a run body starts and ends (without its length prefix). */
function records(body: Buffer): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let pos = 0;
  while (pos < body.length) {
    let len = 0;
    let scale = 1;
    for (;;) {
      const b = body[pos++]!;
      len += (b & 127) * scale;
      if (b < 128) break;
      scale *= 128;
    }
    out.push({ start: pos, end: pos + len });
    pos += len;
  }
  return out;
}

/** The offset of the first byte `tag` at or after `from` in body[from, end) (a field's tag byte). */
function tagAt(body: Buffer, from: number, end: number, tag: number): number {
  const at = body.indexOf(tag, from);
  assert.ok(at >= 0 && at < end, `tag ${tag} found in the record`);
  return at;
}

/**
 * How a run's body can be corrupt, each on the run of seqs 6–10 (its second record is seq 7):
 * cut short, a field of the second record with a wire type protobuf does not have, the third
 * record naming another seq, the fourth record's attribute entry malformed inside, and (on a
 * subscription with ordering keys, where deliveries decode their messages) the fourth record's
 * ordering key not UTF-8. `bad`: a seq whose record it spoils. Where a stream stops: after
 * `delivered`, with an error naming `row` and the seek `--to seekTo`.
 */
interface Corruption {
  readonly bad: number;
  readonly mutate: (body: Buffer) => Buffer;
  readonly ordering?: boolean;
  readonly delivered?: number[];
  readonly row?: string;
  readonly seekTo?: number;
}

const CORRUPTIONS: Record<string, Corruption> = {
  truncated: { bad: 10, mutate: (body) => Buffer.from(body.subarray(0, Math.floor(body.length / 2))) },
  "bad wire type": {
    bad: 7,
    mutate: (body) => {
      const out = Buffer.from(body);
      const r = records(out)[1]!;
      out[tagAt(out, r.start + 2, r.end, 0x12)] = 0x13; // data (field 2, length-delimited) → wire type 3
      return out;
    },
  },
  "wrong seq": {
    bad: 8,
    mutate: (body) => {
      const out = Buffer.from(body);
      const r = records(out)[2]!;
      assert.equal(out[r.start + 1], 8, "the third record is seq 8");
      out[r.start + 1] = 9;
      return out;
    },
  },
  "bad attribute": {
    bad: 9,
    mutate: (body) => {
      const out = Buffer.from(body);
      const r = records(out)[3]!;
      const entry = tagAt(out, r.start + 2, r.end, 0x1a); // attributes (field 3): a map entry
      assert.equal(out[entry + 2], 0x0a, "the entry starts with its key");
      out[entry + 2] = 0x0b; // key (field 1) → wire type 3
      return out;
    },
  },
  "ordering key not UTF-8": {
    bad: 9,
    ordering: true,
    delivered: [1, 2, 3, 4, 5, 6, 7, 8],
    row: "seq 9",
    seekTo: 10,
    mutate: (body) => {
      const out = Buffer.from(body);
      const r = records(out)[3]!;
      const key = tagAt(out, r.start + 2, r.end, 0x22); // ordering_key (field 4)
      assert.equal(out[key + 1], 5, "the key is k-009");
      out[key + 2] = 0xff;
      return out;
    },
  },
};

/**
 * A stored run whose bytes are not what the broker wrote (a bad disk, a hand-edited row):
 * before, the first delivery that parsed it threw out of the event loop and ended the process,
 * and the dedup index rebuild retried it for ever, holding every publish with a message id.
 * Now its readers get DATA_LOSS naming its seqs and the seek past them; the broker, the topic's
 * other messages, publishing and other topics go on.
 */
export function corruptRunSuite(kind: string, fresh: FreshStore, corrupt: CorruptRow): void {
  test(`${kind}: a corrupt stored row is DATA_LOSS for its readers, and nothing else stops`, async () => {
    const url = await fresh(`${kind}_corrupt`);
    const topics = Object.keys(CORRUPTIONS).map((name, i) => ({ name: `c${i}`, corruption: name }));
    let bus: NerveBus = await startBroker(url);
    let client = new TestClient(bus.address);
    try {
      for (const { name, corruption } of topics) {
        const ordering = CORRUPTIONS[corruption]!.ordering === true;
        // Three packs, one stored run each: seqs 1–5, 6–10 (made corrupt) and 11–15.
        for (let p = 0; p < 3; p++) {
          const msgs = Array.from({ length: 5 }, (_, i) => ({
            data: Buffer.from(`m${p * 5 + i + 1}`),
            messageId: `id-${p * 5 + i + 1}`,
            attributes: { k: "v" },
            orderingKey: ordering ? `k-${String(p * 5 + i + 1).padStart(3, "0")}` : "",
          }));
          const r = await client.publish(name, msgs);
          assert.equal(Number(r.firstSeq), p * 5 + 1);
        }
        if (ordering)
          await client.adminCall("createSubscription", {
            subscription: { topic: name, name: "s", ordering: true },
            start: { case: "startPoint", value: StartPoint.EARLIEST },
          });
      }
      await client.publish("other", ["a", "b"]);
      client.close();
      await bus.stop();
      for (const { name, corruption } of topics) await corrupt(url, name, 6, CORRUPTIONS[corruption]!.mutate);
      bus = await startBroker(url);
      client = new TestClient(bus.address);

      for (const { name, corruption } of topics) {
        const what = `${corruption} (${name})`;
        const c = CORRUPTIONS[corruption]!;
        const delivered = c.delivered ?? [1, 2, 3, 4, 5];
        // The messages before the corrupt row are delivered; then the stream ends with DATA_LOSS
        // naming its seqs and how to get past them.
        const s = client.receive(name, "s", { from: "earliest" });
        await s.until(() => s.ended, 20_000, `the stream of ${what} to end`);
        assert.deepEqual(seqsOf(s.deliveries), delivered, `${what}: what precedes the row is delivered`);
        assert.equal(s.error?.code, grpc.status.DATA_LOSS, `${what}: ${s.error?.details}`);
        assert.match(s.error!.details, new RegExp(`${c.row ?? "seqs 6–10"} is corrupt`));
        assert.match(
          s.error!.details,
          new RegExp(`nervebus sub seek ${name} SUBSCRIPTION --to ${c.seekTo ?? 11}`),
        );
        // Browsing: the spoilt record is DATA_LOSS, the other rows' messages are there.
        await assert.rejects(
          client.adminCall("getMessage", { topic: name, seq: BigInt(CORRUPTIONS[corruption]!.bad) }),
          (err: grpc.ServiceError) => {
            assert.equal(err.code, grpc.status.DATA_LOSS, `${what}: ${err.details}`);
            return true;
          },
        );
        for (const seq of [3, 12])
          assert.equal(
            Buffer.from(
              (await client.adminCall("getMessage", { topic: name, seq: BigInt(seq) })).message!.message!
                .data,
            ).toString(),
            `m${seq}`,
          );
        // The dedup index was rebuilt past the row: a retry of seq 12 is a duplicate, a new
        // message is appended (neither waits for a rebuild that never ends).
        const again = await client.publish(
          name,
          [
            { data: Buffer.from("x"), messageId: "id-12" },
            { data: Buffer.from("m16"), messageId: "id-16" },
          ],
          10_000,
        );
        assert.equal(again.results[0]!.outcome, Outcome.DUPLICATE, what);
        assert.equal(Number(again.results[0]!.seq), 12);
        assert.equal(again.results[1]!.outcome, Outcome.APPENDED, what);
        assert.equal(Number(again.results[1]!.seq), 16);
        // A consumer that comes back is told again (after 1–5 once more: the stream that got
        // them ended before they could be acked); after the seek the subscription goes on.
        const back = client.receive(name, "s", { from: "earliest" });
        await back.until(() => back.ended, 20_000, `the second stream of ${what} to end`);
        assert.equal(back.error?.code, grpc.status.DATA_LOSS);
        assert.deepEqual(
          seqsOf(back.deliveries).sort((a, b) => a - b),
          delivered,
        );
        await client.adminCall("seekSubscription", {
          topic: name,
          name: "s",
          target: { case: "seq", value: 11n },
        });
        const after = client.receive(name, "s", { from: "earliest" });
        await after.until(() => after.deliveries.length >= 6, 20_000, `${what}: the messages after the row`);
        assert.deepEqual(seqsOf(after.deliveries), [11, 12, 13, 14, 15, 16]);
        assert.equal(after.error, undefined);
        after.cancel();
      }
      // Another topic never noticed.
      await client.publish("other", ["c"]);
      const o = client.receive("other", "o", { from: "earliest" });
      await o.until(() => o.deliveries.length >= 3, 20_000, "the other topic's messages");
      assert.deepEqual(seqsOf(o.deliveries), [1, 2, 3]);
      o.cancel();
    } finally {
      client.close();
      await bus.stop();
    }
  });
}
