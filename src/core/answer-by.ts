/**
 * How long before a call's deadline the broker gives up waiting and answers: room for the
 * answer to reach the client and for a busy event loop to run the timer late.
 */
const DEADLINE_MARGIN_MS = 100;

/** The longest delay setTimeout takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * When the broker stops waiting for a call whose deadline is `deadline` (ms since epoch):
 * DEADLINE_MARGIN_MS before it, or, for a call with less time than twice that left, halfway to
 * it, so a short deadline still leaves the store time and gets the broker's answer when it
 * cannot.
 */
export function answerBy(deadline: number, now: number): number {
  return deadline - Math.min(DEADLINE_MARGIN_MS, (deadline - now) / 2);
}

/**
 * `wait`'s result, or `late()`'s error at `at` (ms since epoch) when it has not settled by then,
 * so the caller gets the broker's status instead of its own client's bare DEADLINE_EXCEEDED.
 * The wait itself goes on (a topic load, a store write): what it ends with after that is
 * dropped, its error included, never unhandled.
 */
export function settleBy<T>(wait: Promise<T>, at: number, late: () => Error): Promise<T> {
  const ms = Math.max(0, at - Date.now());
  // Past setTimeout's limit (~24.8 days) it would fire at once; such a wait is unbounded in practice.
  if (ms > MAX_TIMER_MS) return wait;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), ms);
    timer.unref();
    wait.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
