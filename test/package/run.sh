#!/usr/bin/env bash
# Installs the built swarm into a temporary prefix, then builds and runs a consumer against it three ways:
# find_package with the shared library, find_package with the static library, and pkg-config.
set -euo pipefail
build=$1 source=$2 cxx=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null

for mode in shared static; do
  static=OFF; [ "$mode" = static ] && static=ON
  cmake -S "$source/test/package/consumer" -B "$work/$mode" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DSWARM_USE_STATIC=$static >/dev/null
  cmake --build "$work/$mode" >/dev/null
  LD_LIBRARY_PATH="$work/prefix/lib" "$work/$mode/consumer"
done

export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
"$cxx" -std=c++20 -o "$work/pc" "$source/test/package/consumer/main.cpp" $(pkg-config --cflags --libs swarm)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/pc"
