import { fileError, parseJsonFile } from "./file-error.js";
import { NamePattern } from "./name-pattern.js";

/** What a principal may be allowed to do. */
export type Action = "publish" | "subscribe" | "admin";

/** The actions, as a policy file spells them. */
export const ACTIONS: readonly Action[] = ["publish", "subscribe", "admin"];

/**
 * "Every name": asked for an operation that reaches all of a kind at once (deleting a topic
 * deletes all its subscriptions; /metrics shows every topic). Only the pattern `*` covers it.
 */
export const EVERY_NAME: unique symbol = Symbol("every name");

/** A topic or subscription an operation touches: one name, or EVERY_NAME. */
export type NameScope = string | typeof EVERY_NAME;

interface Rule {
  readonly actions: ReadonlySet<Action>;
  readonly topics: readonly NamePattern[];
  readonly subscriptions: readonly NamePattern[];
}

function covers(patterns: readonly NamePattern[], scope: NameScope): boolean {
  return scope === EVERY_NAME
    ? patterns.some((p) => p.matchesEverything)
    : patterns.some((p) => p.matches(scope));
}

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads one rule object; throws fileError naming its key path. */
function parseRule(file: string, path: string, raw: Json): Rule {
  const fail = (where: string, problem: string): never => {
    throw fileError(file, where, problem);
  };
  if (!isObject(raw))
    return fail(path, 'must be an object like {"allow": ["publish"], "topics": ["orders.*"]}');
  for (const key of Object.keys(raw)) {
    if (key !== "allow" && key !== "topics" && key !== "subscriptions")
      fail(`${path}.${key}`, "is not a rule field; use allow, topics and subscriptions");
  }
  const list = (key: string, required: boolean): Json[] => {
    const v = raw[key];
    if (v === undefined && !required) return [];
    if (!Array.isArray(v) || v.length === 0) return fail(`${path}.${key}`, "must be a non-empty array");
    return v;
  };
  const actions = new Set<Action>();
  for (const [i, a] of list("allow", true).entries()) {
    if (!ACTIONS.includes(a as Action))
      fail(`${path}.allow[${i}]`, `${JSON.stringify(a)} is not an action; use ${ACTIONS.join(", ")}`);
    actions.add(a as Action);
  }
  const patterns = (key: string, fallback: string[]): NamePattern[] => {
    const values = list(key, fallback.length === 0);
    return (values.length === 0 ? fallback : values).map((v, i) => {
      const p = typeof v === "string" ? NamePattern.parse(v) : { problem: "must be a string" };
      return "problem" in p ? fail(`${path}.${key}[${i}]`, `${JSON.stringify(v)} ${p.problem}`) : p;
    });
  };
  return { actions, topics: patterns("topics", []), subscriptions: patterns("subscriptions", ["*"]) };
}

function parseRules(file: string, path: string, raw: Json): Rule[] {
  if (!Array.isArray(raw)) throw fileError(file, path, "must be an array of rules");
  return raw.map((r, i) => parseRule(file, `${path}[${i}]`, r));
}

/**
 * Who may do what (DESIGN §5a): per principal, rules that allow `publish`, `subscribe` and
 * `admin` on topic name patterns, and for `subscribe` and subscription administration on
 * subscription name patterns too (default `*`). Rules only allow; a principal's rules are its
 * own plus `default`'s. The file:
 *
 *     { "principals": { "billing": [ { "allow": ["subscribe"], "topics": ["orders"],
 *                                      "subscriptions": ["billing-*"] } ] },
 *       "default": [ { "allow": ["publish"], "topics": ["audit.*"] } ] }
 */
export class Policy {
  private constructor(
    readonly byPrincipal: ReadonlyMap<string, readonly Rule[]>,
    readonly defaults: readonly Rule[],
    /** No policy file: every authenticated principal may do everything. */
    readonly allowsAll: boolean,
  ) {}

  /** The policy of a broker with authentication but no policy file. */
  static allowAll(): Policy {
    return new Policy(new Map(), [], true);
  }

  /** Parses a policy file; throws NerveBusError (invalid_argument) naming the file and key. */
  static parse(file: string, text: string): Policy {
    const raw = parseJsonFile(file, text);
    if (!isObject(raw)) throw fileError(file, "", 'must be a JSON object with "principals" and/or "default"');
    for (const key of Object.keys(raw)) {
      if (key !== "principals" && key !== "default")
        throw fileError(file, key, 'is not a policy field; use "principals" and "default"');
    }
    const principals = raw.principals ?? {};
    if (!isObject(principals))
      throw fileError(file, "principals", "must be an object mapping principal names to rules");
    const byPrincipal = new Map<string, Rule[]>();
    for (const [name, rules] of Object.entries(principals)) {
      if (name === "") throw fileError(file, "principals", "a principal name must not be empty");
      byPrincipal.set(name, parseRules(file, `principals.${name}`, rules));
    }
    return new Policy(byPrincipal, parseRules(file, "default", raw.default ?? []), false);
  }

  #rules(principal: string): readonly Rule[] {
    const own = this.byPrincipal.get(principal);
    return own === undefined ? this.defaults : [...own, ...this.defaults];
  }

  /**
   * Whether `principal` may do `action` on `topic`, and, when `subscription` is given, on that
   * subscription of it. Without `subscription` a rule limited to some subscriptions still
   * counts (a publish, or a read that shows only those subscriptions).
   */
  allows(principal: string, action: Action, topic: NameScope, subscription?: NameScope): boolean {
    if (this.allowsAll) return true;
    return this.#rules(principal).some(
      (r) =>
        r.actions.has(action) &&
        covers(r.topics, topic) &&
        (subscription === undefined || covers(r.subscriptions, subscription)),
    );
  }

  /** Whether `principal` may do `action` on at least some topic (the gate of list operations). */
  allowsSomewhere(principal: string, action: Action): boolean {
    return this.allowsAll || this.#rules(principal).some((r) => r.actions.has(action));
  }
}
