import { readFileSync } from "node:fs";
import { NerveBusError } from "../core/index.js";
import { checkHostPort } from "./host-port.js";
import { applyMemoryBudget } from "./memory-budget.js";
import { type Config, OPTIONS, type OptionSpec } from "./options.js";

import { BYTE_UNITS, parseQuantity, TIME_UNITS } from "./units.js";

/** --max-message-bytes for maxMessageBytes. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** NERVEBUS_MAX_MESSAGE_BYTES for maxMessageBytes. */
export function envName(key: string): string {
  return `NERVEBUS_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

function parseValue(spec: OptionSpec, raw: unknown, source: string): Config[keyof Config] {
  const fail = (problem: string): never => {
    throw new NerveBusError("invalid_argument", `${source}: ${problem}`);
  };
  switch (spec.kind) {
    case "string":
      if (typeof raw !== "string" || raw === "") fail("must be a non-empty string");
      return raw as string;
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (raw === "true" || raw === "1") return true;
      if (raw === "false" || raw === "0") return false;
      return fail(`must be true or false, got ${JSON.stringify(raw)}`);
    case "enum":
      if (typeof raw !== "string" || !spec.values?.includes(raw))
        fail(`must be one of ${spec.values?.join(", ")}, got ${JSON.stringify(raw)}`);
      return raw as string as Config["logLevel"];
    default: {
      let n: number;
      if (typeof raw === "number") {
        n = raw;
      } else {
        const units = spec.kind === "bytes" ? BYTE_UNITS : spec.kind === "duration" ? TIME_UNITS : { "": 1 };
        const parsed = parseQuantity(String(raw), units);
        if (parsed === undefined) {
          const hint =
            spec.kind === "bytes"
              ? " (e.g. 1048576 or 1MiB)"
              : spec.kind === "duration"
                ? " (ms, or e.g. 30s, 5m)"
                : "";
          return fail(`must be a whole number${hint}, got ${JSON.stringify(raw)}`);
        }
        n = parsed;
      }
      if (!Number.isInteger(n)) fail(`must be a whole number, got ${n}`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        fail(`must be between ${spec.min} and ${spec.max}, got ${n}`);
      }
      return n;
    }
  }
}

/** What a JSON value that is not an object is, for an error message. */
function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/**
 * Builds the config: defaults < JSON file (`configFile`) < NERVEBUS_* environment < flags.
 * Every value is validated once here; errors name the flag, variable or file key and the range.
 */
export function loadConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  configFile?: string,
): Config {
  const config = Object.fromEntries(OPTIONS.map((o) => [o.key, o.default])) as unknown as Config;
  const set = (spec: OptionSpec, raw: unknown, source: string) => {
    (config as unknown as Record<string, unknown>)[spec.key] = parseValue(spec, raw, source);
    given.add(spec.key);
  };
  const fileKeys = new Set<string>();
  /** Keys given by the file, the environment or a flag (the rest are defaults). */
  const given = new Set<string>();
  if (configFile !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(configFile, "utf8"));
    } catch (err) {
      throw new NerveBusError("invalid_argument", `--config ${configFile}: ${(err as Error).message}`);
    }
    // Object.entries would throw on null without naming the file, and take an array's indexes
    // or a string's characters for settings.
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new NerveBusError(
        "invalid_argument",
        `--config ${configFile}: must be a JSON object of settings (e.g. {"shards": 8}), got ${jsonKind(parsed)}`,
      );
    for (const [k, v] of Object.entries(parsed)) {
      fileKeys.add(k);
      const spec = OPTIONS.find((o) => o.key === k);
      if (spec === undefined)
        throw new NerveBusError("invalid_argument", `${configFile}: unknown setting ${JSON.stringify(k)}`);
      set(spec, v, `${configFile} ${k}`);
    }
  }
  for (const spec of OPTIONS) {
    const v = env[envName(spec.key)];
    if (v !== undefined && v !== "") set(spec, v, envName(spec.key));
  }
  for (const spec of OPTIONS) {
    const v = flags[flagName(spec.key)];
    if (v !== undefined) set(spec, v, `--${flagName(spec.key)}`);
  }
  applyMemoryBudget(config, given);
  if (config.maxPackBytes < config.maxMessageBytes) {
    throw new NerveBusError(
      "invalid_argument",
      `--max-pack-bytes (${config.maxPackBytes}) must be ≥ --max-message-bytes (${config.maxMessageBytes})`,
    );
  }
  if (config.minBackoffMs > config.maxBackoffMs) {
    throw new NerveBusError(
      "invalid_argument",
      `--min-backoff-ms (${config.minBackoffMs}) must be ≤ --max-backoff-ms (${config.maxBackoffMs})`,
    );
  }
  if (config.leaseRenewMs * 3 > config.leaseTtlMs) {
    throw new NerveBusError(
      "invalid_argument",
      `--lease-renew-ms (${config.leaseRenewMs}) must be at most a third of --lease-ttl-ms (${config.leaseTtlMs}), so two renewals can fail before the lease lapses`,
    );
  }
  // A gRPC port of 0 (tests, several brokers on one machine) picks a free HTTP port too, unless
  // the HTTP address was given.
  const httpGiven =
    flags[flagName("httpListen")] !== undefined ||
    env[envName("httpListen")] !== undefined ||
    fileKeys.has("httpListen");
  if (!httpGiven && config.listen.endsWith(":0"))
    config.httpListen = `${config.listen.slice(0, config.listen.lastIndexOf(":"))}:0`;
  checkSecurity(config);
  checkHostPort("http-listen", config.httpListen, true);
  checkHostPort("listen", config.listen);
  return config;
}

/** The security settings' combinations; their files are read and checked by src/auth at start. */
function checkSecurity(config: Config): void {
  const fail = (message: string): never => {
    throw new NerveBusError("invalid_argument", message);
  };
  if ((config.tlsCert === "") !== (config.tlsKey === ""))
    fail("--tls-cert and --tls-key go together: give both or neither");
  if (config.tlsClientCa !== "" && config.tlsCert === "")
    fail(
      "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in the TLS handshake",
    );
  if (config.clusterTlsCa !== "" && (config.tlsCert === "" || !config.cluster))
    fail(
      "--cluster-tls-ca needs --cluster, --tls-cert and --tls-key: brokers call each other over TLS when they serve TLS",
    );
  const jwt = [config.authJwks, config.authJwtIssuer, config.authJwtAudience];
  if (jwt.some((v) => v !== "") && jwt.some((v) => v === ""))
    fail(
      "--auth-jwks, --auth-jwt-issuer and --auth-jwt-audience go together: a JWT is accepted only from that issuer for that audience",
    );
  const authn = config.authTokens !== "" || config.authJwks !== "" || config.tlsClientCa !== "";
  if (config.authPolicy !== "" && !authn)
    fail("--auth-policy needs a way to know principals: --auth-tokens, --auth-jwks or --tls-client-ca");
  if (config.requireAuth && config.tlsCert === "")
    fail("--require-auth: refusing to start without TLS; give --tls-cert and --tls-key");
  if (config.requireAuth && !authn)
    fail(
      "--require-auth: refusing to start without authentication; give --auth-tokens, --auth-jwks or --tls-client-ca",
    );
}
