/** The gRPC edge: wire types stop here. */

export {
  createClient,
  FLOW_CONTROL_OPTIONS,
  type ServiceClient,
} from "../../clients/ts/src/grpc-adapter.js";
export { type Caller, CallGuard, type Need } from "./call-guard.js";
export { ClusterRelayTarget } from "./cluster-relay-target.js";
export { ConnectionRefusals, fileLimitProblem, openFileLimit } from "./connection-limits.js";
export { DeadLetterSender } from "./dead-letter-sender.js";
export { unary } from "./grpc-adapter.js";
export { listensOnLoopbackOnly } from "./host-names.js";
export { type BrokerInfo, type HttpOptions, type RunningHttp, startHttpServer } from "./http-server.js";
export { PeerAuth } from "./peer-auth.js";
export { PeerChannels, readPeerCa } from "./peer-channels.js";
export { PrincipalLimits } from "./principal-limits.js";
export { ProtobufSchemaValidator } from "./schema-validator.js";
export { type RunningServer, type ServerOptions, startServer } from "./server.js";
export { toGrpcStatus } from "./status.js";
