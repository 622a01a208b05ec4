# Source after: mkdir -p /tmp/grpc && tar -xJf grpc.tar.xz -C /tmp/grpc
# shellcheck shell=bash
# (set GRPC_ROOT first if you unpacked it elsewhere).
GRPC_ROOT="${GRPC_ROOT:-/tmp/grpc}"
export GRPC_PREFIX="$GRPC_ROOT/usr"
export PATH="$GRPC_PREFIX/bin${PATH:+:$PATH}"
export LD_LIBRARY_PATH="$GRPC_PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$GRPC_PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# Debian's gRPC looks for TLS roots at /usr/share/grpc/roots.pem by default.
export GRPC_DEFAULT_SSL_ROOTS_FILE_PATH="$GRPC_PREFIX/share/grpc/roots.pem"
