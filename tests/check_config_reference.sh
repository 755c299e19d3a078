#!/bin/sh
# docs/config.md is what `realtime-gateway --config-reference` prints (regenerate it with
# `build/src/realtime-gateway --config-reference > docs/config.md`), and `--help` names every
# RTGW_ variable it lists.
# Usage: check_config_reference.sh BINARY DOCS_CONFIG_MD
set -u
binary=$1
doc=$2
generated=$("$binary" --config-reference) || { echo "--config-reference failed"; exit 1; }
if ! printf '%s\n' "$generated" | diff -u "$doc" -; then
  echo "$doc differs from --config-reference: regenerate it (see the top of this script)"
  exit 1
fi
help=$("$binary" --help) || { echo "--help failed"; exit 1; }
status=0
for var in $(grep -o 'RTGW_[A-Z0-9_]*' "$doc" | sort -u); do
  case "$help" in
    *"$var"*) ;;
    *) echo "--help does not name $var"; status=1 ;;
  esac
done
exit $status
