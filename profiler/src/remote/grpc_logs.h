// gRPC's own log lines, filtered: what gRPC 1.51 prints as errors for the benign race in its
// keepalive pings ("keepalive_ping_end state error") is dropped, failed TLS handshakes are kept
// for the client's error line, everything else goes to standard error as gRPC prints it. Called
// before the first channel or server is made.
#pragma once

#include <string>

namespace l2a::remote {

void filter_grpc_logs();

// The message of the last failed TLS handshake gRPC logged in this client process (kept, not
// printed, once a channel to an engine is open), or ""; taking it clears it.
std::string take_tls_handshake_error();

}  // namespace l2a::remote
