#!/bin/sh
# CTest driver: install the build tree into a temporary prefix, then build and run
# a consumer with find_package(lcsm) (shared and static) and with pkg-config.
# usage: run_package_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
lib=$(find "$work/prefix" -name 'liblcsm.so.0' | head -n 1)
LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$work/consumer/use_shared"
"$work/consumer/use_static"
pc=$(dirname "$(find "$work/prefix" -name lcsm.pc | head -n 1)")
PKG_CONFIG_PATH=$pc cc "$src/main.c" -o "$work/use_pc" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs lcsm)
LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$work/use_pc"
echo "package test: find_package(lcsm) shared + static and pkg-config all work"
