"""Generated protobuf and gRPC modules of the NerveBus API (by scripts/generate.sh; do not edit)."""
