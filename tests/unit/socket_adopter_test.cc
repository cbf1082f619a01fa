#include "worker/http/socket_adopter.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

using phalanx::worker::SocketAdopter;

namespace {

// A connected pair over loopback: the client's fd and the accepted one (non-blocking).
std::pair<int, int> connectedPair(int listener) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  int accepted = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  REQUIRE(accepted >= 0);
  return {client, accepted};
}

struct Reader {
  uv_tcp_t tcp{};
  std::string got;
};

}  // namespace

TEST_CASE("an adopted socket reads and writes through libuv, one after another") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0);
  REQUIRE(listen(listener, 8) == 0);
  {
    SocketAdopter adopter;
    std::string error;
    REQUIRE(adopter.start(&loop, &error));
    for (int round = 0; round < 3; ++round) {
      auto [client, accepted] = connectedPair(listener);
      Reader reader;
      uv_tcp_init(&loop, &reader.tcp);
      reader.tcp.data = &reader;
      REQUIRE(adopter.adopt(&reader.tcp, accepted) == 0);
      uv_os_fd_t fd = -1;
      REQUIRE(uv_fileno(reinterpret_cast<uv_handle_t*>(&reader.tcp), &fd) == 0);
      CHECK(fd == accepted);
      std::string hello = "hello " + std::to_string(round);
      REQUIRE(write(client, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
      uv_read_start(
          reinterpret_cast<uv_stream_t*>(&reader.tcp),
          [](uv_handle_t*, size_t, uv_buf_t* buf) {
            static char storage[256];
            *buf = uv_buf_init(storage, sizeof storage);
          },
          [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
            auto* r = static_cast<Reader*>(s->data);
            if (n > 0) r->got.append(buf->base, static_cast<size_t>(n));
            uv_read_stop(s);
          });
      // The run ends once the read stopped: the adopter's pipe keeps no loop alive.
      uv_run(&loop, UV_RUN_DEFAULT);
      CHECK(reader.got == hello);
      uv_buf_t reply = uv_buf_init(const_cast<char*>("ok"), 2);
      CHECK(uv_try_write(reinterpret_cast<uv_stream_t*>(&reader.tcp), &reply, 1) == 2);
      char answer[2];
      CHECK(read(client, answer, 2) == 2);
      uv_close(reinterpret_cast<uv_handle_t*>(&reader.tcp), nullptr);
      uv_run(&loop, UV_RUN_DEFAULT);
      close(client);
    }
    uv_walk(
        &loop, [](uv_handle_t* h, void*) { uv_close(h, nullptr); }, nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(uv_loop_close(&loop) == 0);
  close(listener);
}
