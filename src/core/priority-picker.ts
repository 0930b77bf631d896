/** Where a subscription takes its next first delivery from. */
export type Lane = "urgent" | "normal" | "oldest";

/**
 * The share of each lane: of every PRIORITY_CYCLE first deliveries while several lanes wait,
 * URGENT_SLOTS go to urgent, one to normal and one to the oldest undelivered message of any
 * priority (so bulk, which only that lane serves, never starves). A lane with nothing waiting
 * gives its slot to the next one.
 */
export const PRIORITY_CYCLE = 10;
const URGENT_SLOTS = 8;

const URGENT_FIRST: readonly Lane[] = ["urgent", "normal", "oldest"];
const NORMAL_FIRST: readonly Lane[] = ["normal", "urgent", "oldest"];
const OLDEST_FIRST: readonly Lane[] = ["oldest", "urgent", "normal"];

/**
 * One subscription's turn in the priority cycle, and how far it has looked through the topic's
 * urgent and normal lanes (everything below is delivered, acked, or goes out in seq order).
 */
export class PriorityPicker {
  #slot = 0;
  /** Per lane: the lowest seq still worth looking at. */
  readonly from = { urgent: 0, normal: 0 };

  /** The lanes to try, in order, for the next first delivery. */
  order(): readonly Lane[] {
    if (this.#slot < URGENT_SLOTS) return URGENT_FIRST;
    return this.#slot === URGENT_SLOTS ? NORMAL_FIRST : OLDEST_FIRST;
  }

  /** A first delivery went out: the next slot of the cycle. */
  delivered(): void {
    this.#slot = (this.#slot + 1) % PRIORITY_CYCLE;
  }

  /** After a seek: look through the lanes from the start again. */
  reset(): void {
    this.from.urgent = 0;
    this.from.normal = 0;
  }
}
