#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates for trying NerveBus with TLS and
# mTLS, and for the clients' tests (each key EC P-256, valid 30 days):
#   OUT/ca.crt, OUT/ca.key           the CA (give ca.crt to clients and to --tls-client-ca)
#   OUT/server.crt, OUT/server.key   the broker's, for localhost, 127.0.0.1 and any extra
#                                    names in $NERVEBUS_CERT_HOSTS (comma-separated, e.g. "nb.example,10.0.0.5")
#   OUT/NAME.crt, OUT/NAME.key       a client certificate with subject CN=NAME, per NAME given
# usage: scripts/make-certs.sh OUT [NAME ...]
# For production use your own PKI (or cert-manager, Vault, step-ca): these keys are unencrypted.
set -euo pipefail
out="${1:?usage: make-certs.sh OUT [CLIENT_NAME ...]}"
shift
mkdir -p "$out"
cd "$out"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -subj "/CN=NerveBus test CA" -days 30 2>/dev/null

# issue NAME SUBJECT EXTENSION...: a key, a CSR, and the CA's signature over it.
issue() {
  local name="$1" subj="$2"
  shift 2
  local ext=()
  for e in "$@"; do ext+=(-addext "$e"); done
  openssl req -new "${ec[@]}" -keyout "$name.key" -out "$name.csr" -subj "$subj" "${ext[@]}" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -copy_extensions copy -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}

san="DNS:localhost,IP:127.0.0.1"
IFS=',' read -ra extra <<<"${NERVEBUS_CERT_HOSTS:-}"
for h in "${extra[@]}"; do
  [ -n "$h" ] || continue
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
# clientAuth too: brokers of a cluster present it to each other (README "Between brokers").
issue server "/CN=nervebus" "subjectAltName=$san" "extendedKeyUsage=serverAuth,clientAuth"
for name in "$@"; do
  issue "$name" "/CN=$name" "extendedKeyUsage=clientAuth"
done
chmod 600 ./*.key
echo "certificates in $(pwd): ca.crt server.crt${*:+ $(printf '%s.crt ' "$@")}" >&2
