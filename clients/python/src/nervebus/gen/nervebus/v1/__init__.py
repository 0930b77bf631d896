"""Generated from proto/nervebus/v1/ by scripts/generate.sh; do not edit."""
