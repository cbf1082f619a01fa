#include "worker/http/socket_adopter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace phalanx::worker {

SocketAdopter::~SocketAdopter() {
  if (write_end_ >= 0) ::close(write_end_);
}

bool SocketAdopter::start(uv_loop_t* loop, std::string* error) {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  write_end_ = ends[1];
  uv_pipe_init(loop, &server_, 0);
  if (int rc = uv_pipe_open(&server_, ends[0]); rc != 0) {
    *error = std::string("uv_pipe_open: ") + uv_strerror(rc);
    ::close(ends[0]);
    return false;
  }
  return true;
}

int SocketAdopter::adopt(uv_tcp_t* tcp, int fd) {
  server_.accepted_fd = fd;
  return uv_accept(reinterpret_cast<uv_stream_t*>(&server_), reinterpret_cast<uv_stream_t*>(tcp));
}

}  // namespace phalanx::worker
