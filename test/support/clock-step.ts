/**
 * Preloaded into a broker process (`--import`) by tests of wall-clock steps. Each SIGUSR2 steps
 * the process's wall clock (`Date.now()` and `new Date()`) by NERVEBUS_TEST_CLOCK_STEP_MS, as
 * NTP stepping the clock or a VM resumed on another host does; the monotonic clock
 * (`performance.now()`, Node's timers) goes on unchanged, as it does then. The broker answers
 * each step with a line `clock stepped by N ms` on stdout. NERVEBUS_TEST_CLOCK_OFFSET_MS sets
 * where the wall clock starts (a broker started after a step).
 */
const step = Number(process.env.NERVEBUS_TEST_CLOCK_STEP_MS ?? "0");
const realNow = Date.now;
let offset = Number(process.env.NERVEBUS_TEST_CLOCK_OFFSET_MS ?? "0");

class SteppedDate extends Date {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(realNow() + offset);
    else super(...(args as [number]));
  }

  static override now(): number {
    return realNow() + offset;
  }
}

globalThis.Date = SteppedDate as DateConstructor;
process.on("SIGUSR2", () => {
  offset += step;
  process.stdout.write(`clock stepped by ${offset} ms\n`);
});
