import { buildRun, copyStoredRange, packOf, recordInfo } from "../src/wire/index.js";

/**
 * What reading a stored run costs the broker's CPU per record, without a store or a network:
 * the check and walk of each record when the run is read back (copyStoredRange) and the window
 * size a first delivery needs (recordInfo), as a drain does them. Prints JSON:
 * `node dist/bench/stored-read.js [--records 1000] [--bytes 100] [--rounds 3000]`.
 */
function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const records = arg("records", 1000);
const bytes = arg("bytes", 100);
const rounds = arg("rounds", 3000);
const messages = Array.from({ length: records }, () => ({
  data: Buffer.alloc(bytes, 97),
  attributes: {},
  orderingKey: "",
  messageId: "",
  deliverAt: 0,
}));
const body = Buffer.from(buildRun(packOf(messages), undefined, 1, Date.now()).body);

function measure(rounds: number): number {
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const run = copyStoredRange(1, body, null, 1, records)!;
    for (let k = 0; k < run.offsets.length; k++) sum += recordInfo(run, k);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (sum <= 0) throw new Error("no records read");
  return ns / (rounds * records);
}

measure(Math.max(1, rounds / 10)); // warm-up
const samples = [measure(rounds), measure(rounds), measure(rounds)];
process.stdout.write(
  `${JSON.stringify({
    what: "read back a stored run and size each record for a first delivery (copyStoredRange + recordInfo)",
    recordsPerRun: records,
    payloadBytes: bytes,
    storedBytesPerRecord: Math.round(body.length / records),
    nsPerRecord: samples.map((s) => Math.round(s * 10) / 10),
  })}\n`,
);
