#include "master/inheritance.h"

#include <doctest/doctest.h>

using phalanx::master::formatInheritance;
using phalanx::master::Inheritance;
using phalanx::master::parseInheritance;

TEST_CASE("an inheritance survives formatting and parsing") {
  Inheritance in{.old_master = 4242, .generation = 7, .shm_fd = 3, .ready_fd = 4, .sockets = {}};
  in.sockets.push_back({.slot = 0, .fd = 5, .address = "127.0.0.1:8080"});
  in.sockets.push_back({.slot = 1, .fd = 6, .address = "[::1]:8080"});
  std::string error;
  auto back = parseInheritance(formatInheritance(in), &error);
  REQUIRE(back);
  CHECK(back->old_master == 4242);
  CHECK(back->generation == 7);
  CHECK(back->shm_fd == 3);
  CHECK(back->ready_fd == 4);
  REQUIRE(back->sockets.size() == 2);
  CHECK(back->sockets[1].slot == 1);
  CHECK(back->sockets[1].fd == 6);
  CHECK(back->sockets[1].address == "[::1]:8080");
}

TEST_CASE("a bad inheritance names its line; unknown items are skipped") {
  std::string error;
  CHECK_FALSE(parseInheritance("", &error));
  CHECK_FALSE(parseInheritance("something else\n", &error));
  CHECK(error.find("line 1") != std::string::npos);
  CHECK_FALSE(parseInheritance("phalanx-inherit 1\nold-master 1\nshm x\nready 4\n", &error));
  CHECK(error.find("line 3") != std::string::npos);
  CHECK_FALSE(
      parseInheritance("phalanx-inherit 1\nold-master 1\nshm 3\nready 4\nlisten 0 5\n", &error));
  CHECK_FALSE(parseInheritance("phalanx-inherit 1\nold-master 1\nshm 3\n", &error));
  CHECK(error.find("incomplete") != std::string::npos);
  auto in = parseInheritance("phalanx-inherit 1\nold-master 9\nshm 3\nready 4\nfuture-thing 1 2\n",
                             &error);
  REQUIRE(in);
  CHECK(in->sockets.empty());
}
