/** A binary min-heap of (key, value) pairs ordered by key. */
export class MinHeap<V> {
  readonly #keys: number[] = [];
  readonly #values: V[] = [];

  get size(): number {
    return this.#keys.length;
  }

  /** The smallest key, or undefined when empty. */
  peekKey(): number | undefined {
    return this.#keys[0];
  }

  push(key: number, value: V): void {
    const k = this.#keys;
    const v = this.#values;
    let i = k.length;
    k.push(key);
    v.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (k[parent]! <= key) break;
      k[i] = k[parent]!;
      v[i] = v[parent]!;
      i = parent;
    }
    k[i] = key;
    v[i] = value;
  }

  /** Removes and returns the value with the smallest key. */
  pop(): V | undefined {
    const k = this.#keys;
    const v = this.#values;
    if (k.length === 0) return undefined;
    const top = v[0];
    const lastKey = k.pop()!;
    const lastValue = v.pop()!;
    const n = k.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && k[r]! < k[l]! ? r : l;
        if (k[c]! >= lastKey) break;
        k[i] = k[c]!;
        v[i] = v[c]!;
        i = c;
      }
      k[i] = lastKey;
      v[i] = lastValue;
    }
    return top;
  }

  /** Keeps only the entries `keep` accepts (O(n) rebuild). */
  retain(keep: (key: number, value: V) => boolean): void {
    const keys = this.#keys.splice(0);
    const values = this.#values.splice(0);
    for (let i = 0; i < keys.length; i++) if (keep(keys[i]!, values[i]!)) this.push(keys[i]!, values[i]!);
  }

  clear(): void {
    this.#keys.length = 0;
    this.#values.length = 0;
  }
}
