"""Generated from proto/nervebus/ by scripts/generate.sh; do not edit."""
