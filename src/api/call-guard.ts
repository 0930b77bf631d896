import type { IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import type * as grpc from "@grpc/grpc-js";
import {
  type Action,
  type Credentials,
  EVERY_NAME,
  type NameScope,
  type Principal,
  type Security,
} from "../auth/index.js";
import { NerveBusError } from "../core/index.js";
import type { Logger } from "../telemetry/index.js";
import type { PeerAuth } from "./peer-auth.js";
import type { PrincipalLimits } from "./principal-limits.js";
import { toGrpcStatus } from "./status.js";

/**
 * What an operation needs: `action` on `topic`, and on `subscription` of it when given. Without
 * a topic it needs the action on some topic (list operations, whose answers are then filtered).
 */
export interface Need {
  readonly action: Action;
  readonly topic?: NameScope;
  readonly subscription?: NameScope;
}

/** Who makes one call or HTTP request. */
export interface Caller {
  /** Undefined when authentication is off: then anyone may do anything. */
  readonly principal: Principal | undefined;
  /** The client's address, for the audit log. */
  readonly peer: string;
}

/** The parts of a grpc-js server call the guard reads. */
export interface GuardedCall {
  readonly metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: import("node:tls").PeerCertificate };
  getPeer(): string;
}

/**
 * How quotas and per-principal limits name a caller: its principal when authentication is on,
 * its client address (without the port) otherwise.
 */
export function principalKey(caller: Caller): string {
  return caller.principal === undefined
    ? `client ${caller.peer.slice(0, caller.peer.lastIndexOf(":"))}`
    : `principal ${JSON.stringify(caller.principal.name)}`;
}

function scopeText(kind: string, scope: NameScope): string {
  return scope === EVERY_NAME ? `every ${kind}` : `${kind} ${JSON.stringify(scope)}`;
}

/** "publish to topic "orders"", "administer subscription "s" of topic "t"", … */
function describeNeed(need: Need): string {
  const verb = need.action === "admin" ? "administer" : `${need.action} to`;
  if (need.topic === undefined) return `${verb} any topic`;
  const topic = scopeText("topic", need.topic);
  if (need.subscription === undefined) return `${verb} ${topic}`;
  if (need.subscription === EVERY_NAME) return `${verb} ${topic} (with all its subscriptions)`;
  return `${verb} ${scopeText("subscription", need.subscription)} of ${topic}`;
}

function auditFields(need: Need | undefined): Record<string, unknown> {
  if (need === undefined) return {};
  const name = (s: NameScope | undefined) => (s === EVERY_NAME ? "*" : s);
  return { action: need.action, topic: name(need.topic), subscription: name(need.subscription) };
}

/**
 * The security check at the API edge (DESIGN §5a), the one place every RPC and HTTP request
 * is authenticated and authorized: who the caller is (src/auth), whether the policy allows
 * what it asks, and an audit line (msg "audit") for every refusal and every admin operation.
 * With authentication off (no tokens, JWKS or client CA configured) every caller may do
 * everything and nothing is refused. Health and reflection never pass through here.
 */
export class CallGuard {
  constructor(
    private readonly security: Security | undefined,
    private readonly log: Logger,
    /** Each principal's share of connections and streams (none: no per-principal bound). */
    private readonly limits?: PrincipalLimits,
    /** Tells calls other brokers of the cluster forwarded (none: no call is forwarded). */
    private readonly peers?: PeerAuth,
  ) {}

  /**
   * Counts a call of `caller` (a Receive stream when `stream`) against its principal's shares;
   * throws NerveBusError (resource_exhausted) when over one. Returns what to call when it ends.
   */
  enter(caller: Caller, stream = false): () => void {
    return this.limits?.enter(principalKey(caller), caller.peer, stream) ?? (() => undefined);
  }

  /** Whether calls need a principal. */
  get authEnabled(): boolean {
    return this.security?.authEnabled ?? false;
  }

  /**
   * The caller of a gRPC call; throws NerveBusError (unauthenticated), audited, without
   * credentials. A call another broker of the cluster forwarded (verified by `peers`) is its
   * client's: the client's token, the certificate principal the forwarding broker verified and
   * the client's address; the forwarding broker's own connection and certificate count for nothing.
   */
  grpcCaller(method: string, call: GuardedCall): Caller {
    const forwarded = this.peers?.forwardedClient(call.metadata);
    const peer = forwarded?.peer ?? call.getPeer();
    return this.#identify(method, peer, () => ({
      authorization: call.metadata.get("authorization").map(String),
      certificate: forwarded === undefined ? call.getAuthContext().sslPeerCertificate : undefined,
      forwardedCertificate: forwarded?.certificate,
    }));
  }

  /** The caller of an HTTP request (Authorization header or client certificate), as grpcCaller. */
  httpCaller(route: string, req: IncomingMessage): Caller {
    const socket = req.socket;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    return this.#identify(route, peer, () => {
      const cert = socket instanceof TLSSocket && socket.authorized ? socket.getPeerCertificate() : undefined;
      return {
        authorization: req.headersDistinct.authorization ?? [],
        certificate: cert?.raw === undefined ? undefined : cert,
      };
    });
  }

  #identify(method: string, peer: string, credentials: () => Credentials): Caller {
    const security = this.security;
    if (security === undefined || !security.authEnabled) return { principal: undefined, peer };
    try {
      return { principal: security.authenticate(credentials()), peer };
    } catch (err) {
      this.log("warn", "audit", {
        outcome: "unauthenticated",
        method,
        peer,
        reason: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  }

  /** Whether the caller may do what `need` says (no logging: for filtering answers). */
  may(caller: Caller, need: Need): boolean {
    const { principal } = caller;
    if (principal === undefined || this.security === undefined) return true;
    return need.topic === undefined
      ? this.security.allowsSomewhere(principal, need.action)
      : this.security.allows(principal, need.action, need.topic, need.subscription);
  }

  /**
   * Throws NerveBusError (permission_denied), audited, naming the principal and the first need
   * the policy does not allow.
   */
  require(method: string, caller: Caller, needs: readonly Need[]): void {
    for (const need of needs) {
      if (this.may(caller, need)) continue;
      const p = caller.principal!;
      const message = `principal ${JSON.stringify(p.name)} (${p.via}) may not ${describeNeed(need)}`;
      this.log("warn", "audit", {
        outcome: "permission_denied",
        method,
        principal: p.name,
        via: p.via,
        peer: caller.peer,
        ...auditFields(need),
        reason: message,
      });
      throw new NerveBusError("permission_denied", message);
    }
  }

  /** grpcCaller and require in one: the caller, once it may do all of `needs`. */
  authorize(method: string, call: GuardedCall, needs: readonly Need[]): Caller {
    const caller = this.grpcCaller(method, call);
    this.require(method, caller, needs);
    return caller;
  }

  /** The audit line of an admin operation that was allowed, with how it ended (`error`: its failure). */
  audit(method: string, caller: Caller, need: Need | undefined, error?: string): void {
    this.log("info", "audit", {
      outcome: error === undefined ? "ok" : "failed",
      method,
      principal: caller.principal?.name,
      via: caller.principal?.via,
      peer: caller.peer,
      ...auditFields(need),
      ...(error === undefined ? {} : { error }),
    });
  }
}

/**
 * A unary handler behind the guard: authenticates the call, checks `needs(request)`, runs
 * `run` with the caller (for answers filtered to what it may see) and audits the outcome.
 * A refusal answers UNAUTHENTICATED or PERMISSION_DENIED; `run`'s errors answer their status.
 */
export function guardedUnary<Req, Res>(
  guard: CallGuard,
  method: string,
  needs: (req: Req) => readonly Need[],
  run: (req: Req, caller: Caller) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let caller: Caller;
    let wanted: readonly Need[];
    let leave: () => void;
    try {
      wanted = needs(call.request);
      caller = guard.authorize(method, call, wanted);
      leave = guard.enter(caller);
    } catch (err) {
      callback(toGrpcStatus(err));
      return;
    }
    run(call.request, caller).then(
      (res) => {
        leave();
        guard.audit(method, caller, wanted[0]);
        callback(null, res);
      },
      (err: unknown) => {
        leave();
        const status = toGrpcStatus(err);
        guard.audit(method, caller, wanted[0], status.details);
        callback(status);
      },
    );
  };
}
