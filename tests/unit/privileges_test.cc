#include "worker/privileges.h"

#include <doctest/doctest.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

using phalanx::worker::dropPrivileges;
using phalanx::worker::PrivilegeDrop;
using phalanx::worker::readCapabilities;

namespace {

// Runs `check` in a child process (the drop cannot be undone, and the test
// runner must keep its own capabilities); its exit code is the number of
// failed conditions, so a bare CHECK on it names them only by count.
template <typename F>
int inChild(F check) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(check());
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

int dropsEverything() {
  int failed = 0;
  PrivilegeDrop drop = dropPrivileges();
  failed += !drop.error.empty();
  failed += !drop.warnings.empty();
  auto sets = readCapabilities();
  failed += !sets || sets->effective != 0 || sets->permitted != 0 || sets->inheritable != 0;
  failed += prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1;
  failed += prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) > 0;
  // With CAP_SETPCAP to start with, the bounding set is empty too.
  if ((drop.had_permitted & (uint64_t{1} << CAP_SETPCAP)) != 0) {
    failed += prctl(PR_CAPBSET_READ, CAP_NET_BIND_SERVICE, 0, 0, 0) != 0;
  }
  return failed;
}

// What systemd's SystemCallFilter=~@privileged does to capset: EPERM.
bool denyCapset() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_capset, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{.len = sizeof filter / sizeof filter[0], .filter = filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

}  // namespace

TEST_CASE("dropping privileges leaves no capability, and doing it again is harmless") {
  CHECK(inChild([] {
          int failed = dropsEverything();
          // A second time, holding nothing (a worker started without privilege).
          return failed + dropsEverything();
        }) == 0);
}

TEST_CASE("the capability sets read back as this process's") {
  auto sets = readCapabilities();
  REQUIRE(sets);
  CHECK((sets->effective & ~sets->permitted) == 0);  // effective is a subset of permitted
}

TEST_CASE("capabilities that cannot be dropped (capset denied) are an error naming them") {
  CHECK(inChild([] {
          if (!denyCapset()) return 100;
          PrivilegeDrop drop = dropPrivileges();
          if (drop.had_permitted == 0) return drop.error.empty() ? 0 : 1;  // nothing to drop
          return drop.error.find("capabilities remain") != std::string::npos &&
                         drop.error.find("capset: Operation not permitted") != std::string::npos
                     ? 0
                     : 1;
        }) == 0);
}
