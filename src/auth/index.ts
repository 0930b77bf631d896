/** Who may call the broker and what they may do: TLS material, principals, policy (DESIGN §5a). */
export { certificatePrincipal } from "./certificate-principal.js";
export { ACTIONS, type Action, EVERY_NAME, type NameScope, Policy } from "./policy.js";
export {
  type Credentials,
  type Principal,
  type ReloadReport,
  Security,
  type SecuritySettings,
} from "./security.js";
export type { TlsMaterial } from "./tls-material.js";
export { tokenHash } from "./token-table.js";
