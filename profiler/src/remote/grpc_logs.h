// gRPC's own log lines, filtered: what gRPC 1.51 prints as errors for the benign race in its
// keepalive pings ("keepalive_ping_end state error") is dropped, everything else goes to
// standard error as gRPC prints it. Called before the first channel or server is made.
#pragma once

namespace l2a::remote {

void filter_grpc_logs();

}  // namespace l2a::remote
