#include "worker/send_batch.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using phalanx::worker::BatchedSender;
using phalanx::worker::SendBatch;

namespace {

// One end of a socket pair; the test reads what arrived at the other.
struct Pair {
  int ends[2] = {-1, -1};
  Pair() { REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ends) == 0); }
  ~Pair() {
    for (int fd : ends) {
      if (fd >= 0) close(fd);
    }
  }
  int ours() const { return ends[0]; }
  std::string received() const {
    std::string all;
    char buf[65536];
    ssize_t n;
    while ((n = read(ends[1], buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
    return all;
  }
  void closePeer() {
    close(ends[1]);
    ends[1] = -1;
  }
  // Our end's send buffer full: a send now takes nothing.
  void fill() {
    std::string chunk(4096, 'f');
    while (send(ends[0], chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
    }
    REQUIRE(errno == EAGAIN);
  }
};

struct Sender : BatchedSender {
  int fd = -1;
  std::string bytes;
  std::vector<int> results;
  std::vector<int>* order = nullptr;  // ids in the order onSent ran
  int id = 0;
  std::function<void()> then;  // runs inside onSent
  int sendFd() const override { return fd; }
  std::string_view unsent() const override { return bytes; }
  void onSent(int result) override {
    results.push_back(result);
    if (order) order->push_back(id);
    if (then) then();
  }
};

// Every case runs through the ring and through send() per socket.
void forBothMethods(const std::function<void(SendBatch&)>& run) {
  for (bool ring : {true, false}) {
    CAPTURE(ring);
    SendBatch batch(ring);
    CHECK(batch.usesRing() == (ring && batch.method() == "io_uring"));
    run(batch);
  }
}

}  // namespace

TEST_CASE("send batch: every listed sender's bytes go out, and each hears it in listed order") {
  forBothMethods([](SendBatch& batch) {
    std::vector<Pair> pairs(3);
    std::vector<std::unique_ptr<Sender>> senders;
    std::vector<int> order;
    for (int i = 0; i < 3; ++i) {
      auto s = std::make_unique<Sender>();
      s->fd = pairs[i].ours();
      s->bytes = "answer " + std::to_string(i);
      s->id = i;
      s->order = &order;
      senders.push_back(std::move(s));
    }
    batch.add(senders[2].get());
    batch.add(senders[0].get());
    batch.add(senders[1].get());
    batch.add(senders[0].get());  // listed once
    CHECK(senders[0]->listed());
    // Bytes are taken at submit(): appended after add() they still go.
    senders[1]->bytes += " and more";
    batch.submit();
    CHECK(batch.empty());
    CHECK(order == std::vector<int>{2, 0, 1});
    for (int i = 0; i < 3; ++i) {
      CHECK_FALSE(senders[i]->listed());
      REQUIRE(senders[i]->results.size() == 1);
      CHECK(senders[i]->results[0] == static_cast<int>(senders[i]->bytes.size()));
      CHECK(pairs[i].received() == senders[i]->bytes);
    }
  });
}

TEST_CASE("send batch: a full socket takes nothing (0), a nearly full one takes part") {
  forBothMethods([](SendBatch& batch) {
    Pair full, some;
    full.fill();
    int small = 16 * 1024;
    REQUIRE(setsockopt(some.ours(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    Sender a, b;
    a.fd = full.ours();
    a.bytes = "waits";
    b.fd = some.ours();
    b.bytes.assign(1 << 20, 'x');  // more than the buffer holds
    batch.add(&a);
    batch.add(&b);
    batch.submit();
    CHECK(a.results == std::vector<int>{0});
    REQUIRE(b.results.size() == 1);
    CHECK(b.results[0] > 0);
    CHECK(b.results[0] < static_cast<int>(b.bytes.size()));
    CHECK(some.received() == b.bytes.substr(0, static_cast<size_t>(b.results[0])));
  });
}

TEST_CASE("send batch: a failed socket is a libuv error for its sender only") {
  forBothMethods([](SendBatch& batch) {
    Pair gone, fine;
    gone.closePeer();
    Sender a, b, c;
    a.fd = gone.ours();
    a.bytes = "to nobody";
    b.fd = -1;  // not a descriptor
    b.bytes = "nowhere";
    c.fd = fine.ours();
    c.bytes = "arrives";
    for (Sender* s : {&a, &b, &c}) batch.add(s);
    batch.submit();  // no SIGPIPE (the test would die of it)
    CHECK(a.results == std::vector<int>{UV_EPIPE});
    CHECK(b.results == std::vector<int>{UV_EBADF});
    CHECK(c.results == std::vector<int>{7});
    CHECK(fine.received() == "arrives");
  });
}

TEST_CASE("send batch: removed senders are neither sent nor called") {
  forBothMethods([](SendBatch& batch) {
    Pair p1, p2, p3;
    Sender a, b, c;
    a.fd = p1.ours();
    a.bytes = "a";
    b.fd = p2.ours();
    b.bytes = "b";
    c.fd = p3.ours();
    c.bytes = "c";
    batch.add(&a);
    batch.add(&b);
    batch.add(&c);
    batch.remove(&b);  // closed before the submit: nothing sent
    CHECK_FALSE(b.listed());
    // Closed by an earlier sender's callback: its bytes went, it hears nothing
    // (its memory may be on its way out).
    a.then = [&] { batch.remove(&c); };
    batch.submit();
    CHECK(a.results == std::vector<int>{1});
    CHECK(b.results.empty());
    CHECK(c.results.empty());
    CHECK(p2.received().empty());
    CHECK(p3.received() == "c");
    batch.remove(&a);  // not listed: a no-op
  });
}

TEST_CASE("send batch: a sender listed again from its callback goes with the next submit") {
  forBothMethods([](SendBatch& batch) {
    Pair p;
    Sender a;
    a.fd = p.ours();
    a.bytes = "first";
    a.then = [&] {
      if (a.results.size() == 1) {
        a.bytes = "second";
        batch.add(&a);
      }
    };
    batch.add(&a);
    batch.submit();
    CHECK(a.results == std::vector<int>{5});
    CHECK_FALSE(batch.empty());
    CHECK(p.received() == "first");
    batch.submit();
    CHECK(a.results == std::vector<int>{5, 6});
    CHECK(batch.empty());
    CHECK(p.received() == "second");
  });
}

TEST_CASE("send batch: nothing to send is 0, and more senders than the ring holds all go") {
  forBothMethods([](SendBatch& batch) {
    Sender empty;
    empty.fd = -1;  // never used: nothing to send
    batch.add(&empty);
    std::vector<Pair> pairs(300);  // 600 descriptors: within a default limit of 1024
    std::vector<Sender> senders(pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      senders[i].fd = pairs[i].ours();
      senders[i].bytes = "n" + std::to_string(i);
      batch.add(&senders[i]);
    }
    batch.submit();
    CHECK(empty.results == std::vector<int>{0});
    for (size_t i = 0; i < pairs.size(); ++i) {
      REQUIRE(senders[i].results.size() == 1);
      CHECK(senders[i].results[0] == static_cast<int>(senders[i].bytes.size()));
      CHECK(pairs[i].received() == senders[i].bytes);
    }
  });
}
