// berthd's stream server: the HTTP endpoint behind the URLs that the CRI's Exec, Attach
// and PortForward calls return (docs/cri.md, "Streaming"). A call stores what it asked
// for under a single-use random token; the client (crictl, the kubelet's proxy, critest)
// then upgrades an HTTP request on /exec/<token>, /attach/<token> or
// /portforward/<token> to SPDY/3.1 or WebSocket and gets multiplexed streams.
//
// The server starts at the first such call (libmicrohttpd is loaded then, not before)
// and runs each upgraded connection on a thread of its own, bounded in number, idle time
// and stream-creation time. Exec and attach ride on the container's berth-shim
// (attach.sock); port-forward connects to the port inside the pod's network namespace.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace berth::stream {

struct ServerConfig {
  std::string address = "127.0.0.1";  // an IP address; the URLs name it
  uint16_t port = 0;                   // 0: an ephemeral port, chosen at start
  std::string tls_cert, tls_key;       // PEM files, both or neither: https URLs
  std::chrono::seconds idle_timeout{std::chrono::hours(4)};  // no byte either way: closed
  std::chrono::seconds creation_timeout{30};  // the client must open its streams within
  std::chrono::seconds token_ttl{60};         // an unused URL expires
  unsigned max_sessions = 128;                // upgraded connections at once
  unsigned max_pending = 1000;                // tokens issued and not used yet
};

// Exec or attach: the container's shim and what the client asked for.
struct ProcessTarget {
  std::string container_id;
  std::string attach_socket;        // the shim's attach.sock
  std::vector<std::string> command; // exec: the command; attach: empty
  bool tty = false, stdin = false, stdout = false, stderr = false;
  // Attach: how the container was created. Its stdin is only written when it has one,
  // and a client closing stdin closes the container's when stdin_once and no tty.
  bool container_stdin = false, container_stdin_once = false;
};

// Port-forward: the pod's pinned network namespace.
struct PortForwardTarget {
  std::string sandbox_id;
  std::string netns_path;      // empty: the host's (a pod on the node's network)
  std::vector<uint16_t> ports; // WebSocket clients: the ports (SPDY clients name theirs per stream)
};

class Server {
public:
  explicit Server(ServerConfig cfg);
  ~Server();  // shutdown()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Each returns the URL for the client, starting the server first when it is not
  // running. Errors: ENOSPC past max_pending tokens, the listen error on a bad address.
  std::string exec(ProcessTarget target);
  std::string attach(ProcessTarget target);
  std::string port_forward(PortForwardTarget target);

  // Ends the sessions of a container or pod (its exec, attach and port-forward
  // sessions), as when it stops.
  void cancel(const std::string& id);

  // Refuses new requests, ends every session (the client is told; the shim kills an exec
  // whose client is gone, so no process is left), stops listening. Idempotent.
  void shutdown();

  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
};

} // namespace berth::stream
