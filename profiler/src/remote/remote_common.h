// What the server and the client of the remote engine share besides the protocol.
#pragma once

#include <string>

namespace l2a::remote {

// Throws l2a::Error naming `listen` when it is neither HOST:PORT (port 0..65535) nor unix:PATH
// with a path whose folder exists and that is not a folder itself.
void check_listen_address(const std::string& listen);

// Why nothing answered at a gRPC target (HOST:PORT or unix:PATH), told by a plain connection
// attempt of at most 3 s: an unknown host, a refused connection, silence, a missing socket, or a
// port that accepts but is no engine. "" for a target it cannot read.
std::string why_unreachable(const std::string& target);

// Why nothing can answer at a gRPC target right now, told by one plain connection attempt of at
// most 0.5 s: an unknown host, no address accepting or silent (refused, or failed at once), or a
// missing, refusing or unusable socket; "" when something accepts, stays silent, or `target`
// cannot be read (then only waiting tells). `lasting`: no server starting can change it (an
// unknown host, a path that is no socket).
std::string refused_now(const std::string& target, bool& lasting);

// Why a server cannot listen on HOST:PORT, told by a plain bind() (address in use, a port below
// 1024 without privileges, not this machine's address), or "" when it can or for unix:PATH.
std::string why_cannot_listen(const std::string& listen);

// Whether a --listen address (HOST:PORT) stays on this machine: localhost, 127.x.y.z, [::1].
bool is_loopback_listen(const std::string& listen);

// An --engine URL as gRPC's target: tcp://HOST:PORT and tls://HOST:PORT give HOST:PORT
// (`tls` set for the latter), unix:PATH stays. Throws l2a::Error naming the URL otherwise.
std::string grpc_target(const std::string& url, bool& tls);

}  // namespace l2a::remote
