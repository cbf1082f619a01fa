// Hands a socket the worker accepted itself to a uv_tcp_t without the
// ioctl(FIONBIO) that uv_tcp_open() spends on every call.
//
// Why: the worker accepts with accept4(SOCK_NONBLOCK) through its own uv_poll
// (so at max_connections new connections wait in the backlog, and EMFILE backs
// off instead of libuv's accept-and-close), and on a one-request connection
// that redundant ioctl was one syscall in eight (about 6% of the server's CPU
// per request on new connections).
//
// How: libuv's uv_accept(server, client) opens the server's pending
// `accepted_fd` into the client with no ioctl (libuv accepted it non-blocking).
// The "server" here is a pipe that is never written: uv_accept re-arms its
// read watcher, which never fires. This leans on uv_stream_t::accepted_fd, a
// field libuv's header declares among its private ones (libuv 1.44, Debian 12);
// socket_adopter_test checks the behaviour this depends on.
//
// Contract: start() once per loop; adopt(tcp, fd) with `tcp` initialized
// (uv_tcp_init) and not open, `fd` an accepted non-blocking TCP socket. On
// failure adopt() has closed `fd`. The pipe handle is closed like the loop's
// other handles (uv_walk at exit); the destructor closes the pipe's write end.
#pragma once

#include <uv.h>

#include <string>

namespace phalanx::worker {

class SocketAdopter {
 public:
  SocketAdopter() = default;
  SocketAdopter(const SocketAdopter&) = delete;
  SocketAdopter& operator=(const SocketAdopter&) = delete;
  ~SocketAdopter();

  bool start(uv_loop_t* loop, std::string* error);
  int adopt(uv_tcp_t* tcp, int fd);

 private:
  uv_pipe_t server_{};
  int write_end_ = -1;  // kept open, never written: the read end never wakes
};

}  // namespace phalanx::worker
