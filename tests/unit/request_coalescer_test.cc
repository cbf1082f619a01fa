#include "worker/gateway/request_coalescer.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace phalanx::worker;

using Waiters = std::vector<RequestCoalescer::Waiter>;

TEST_CASE("coalescer: the first miss leads, later ones wait, release hands them back in order") {
  RequestCoalescer c;
  CHECK(c.inFlight() == 0);
  CHECK(c.join("k", 1));
  CHECK(c.inFlight() == 1);
  CHECK_FALSE(c.join("k", 2));
  CHECK_FALSE(c.join("k", 3));
  CHECK_FALSE(c.join("k", 4));
  CHECK(c.inFlight() == 1);
  CHECK(c.release("k") == Waiters{2, 3, 4});
  CHECK(c.inFlight() == 0);
  // Forgotten: the next miss leads again.
  CHECK(c.join("k", 5));
  CHECK(c.release("k").empty());
}

TEST_CASE("coalescer: keys are independent") {
  RequestCoalescer c;
  CHECK(c.join("a", 1));
  CHECK(c.join("b", 2));
  CHECK_FALSE(c.join("a", 3));
  CHECK_FALSE(c.join("b", 4));
  CHECK(c.inFlight() == 2);
  CHECK(c.release("b") == Waiters{4});
  CHECK(c.inFlight() == 1);
  CHECK_FALSE(c.join("a", 5));
  CHECK(c.release("a") == Waiters{3, 5});
  CHECK(c.inFlight() == 0);
}

TEST_CASE("coalescer: a waiter that leaves is not handed back; the leader stays in flight") {
  RequestCoalescer c;
  CHECK(c.join("k", 1));
  CHECK_FALSE(c.join("k", 2));
  CHECK_FALSE(c.join("k", 3));
  CHECK_FALSE(c.join("k", 4));
  c.leave("k", 3);
  c.leave("k", 3);      // twice: nothing more
  c.leave("k", 1);      // the leader is no waiter: nothing
  c.leave("k", 99);     // unknown waiter
  c.leave("other", 2);  // unknown key: nothing, and no key made
  CHECK(c.inFlight() == 1);
  c.leave("k", 2);
  c.leave("k", 4);
  CHECK(c.inFlight() == 1);  // no waiter left, still one request in flight
  CHECK_FALSE(c.join("k", 5));
  CHECK(c.release("k") == Waiters{5});
}

TEST_CASE("coalescer: release of a key not in flight gives nothing") {
  RequestCoalescer c;
  CHECK(c.release("k").empty());
  CHECK(c.join("k", 1));
  CHECK(c.release("k").empty());
  CHECK(c.release("k").empty());
  CHECK(c.inFlight() == 0);
}
