#include "worker/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace phalanx::worker {

namespace {

// The sets are 64 bits wide; the kernel knows fewer (cap_last_cap), and
// answers EINVAL for the rest.
constexpr int kHighestCapability = 63;

std::string mask(uint64_t bits) {
  char text[24];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

// Raw capset(2): glibc has no wrapper, and libcap is not worth a dependency
// for two calls.
bool writeCapabilities(const CapabilitySets& sets) {
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    data[i].effective = static_cast<uint32_t>(sets.effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(sets.permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(sets.inheritable >> (32 * i));
  }
  return syscall(SYS_capset, &header, data) == 0;
}

// Empties the bounding set, so that not even an exec of a file with
// capabilities (or, for root, of anything) can grant one again.
void dropBoundingSet(PrivilegeDrop& drop) {
  for (int cap = 0; cap <= kHighestCapability; ++cap) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) <= 0) continue;  // not in it, or unknown
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      drop.warnings.push_back("cannot empty the capability bounding set (capability " +
                              std::to_string(cap) + "): " + std::strerror(errno));
      return;
    }
  }
}

}  // namespace

std::optional<CapabilitySets> readCapabilities() {
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (syscall(SYS_capget, &header, data) != 0) return std::nullopt;
  CapabilitySets sets;
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    sets.effective |= static_cast<uint64_t>(data[i].effective) << (32 * i);
    sets.permitted |= static_cast<uint64_t>(data[i].permitted) << (32 * i);
    sets.inheritable |= static_cast<uint64_t>(data[i].inheritable) << (32 * i);
  }
  return sets;
}

PrivilegeDrop dropPrivileges() {
  PrivilegeDrop drop;
  std::optional<CapabilitySets> before = readCapabilities();
  if (!before) {
    drop.error = std::string("capget: ") + std::strerror(errno);
    return drop;
  }
  drop.had_permitted = before->permitted;
  // EINVAL: a kernel before 4.3, which has no ambient set to clear.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    drop.warnings.push_back(std::string("cannot clear the ambient capabilities: ") +
                            std::strerror(errno));
  }
  // Only while CAP_SETPCAP is still effective, hence before capset.
  if (before->effective & (uint64_t{1} << CAP_SETPCAP)) dropBoundingSet(drop);
  std::string capset_error;
  if (!writeCapabilities({})) capset_error = std::string("capset: ") + std::strerror(errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    drop.warnings.push_back(std::string("cannot set no_new_privs: ") + std::strerror(errno));
  }

  std::optional<CapabilitySets> after = readCapabilities();
  if (!after) {
    drop.error = std::string("capget after dropping the capabilities: ") + std::strerror(errno);
  } else if (after->effective != 0 || after->permitted != 0) {
    drop.error = "capabilities remain after dropping them (effective " + mask(after->effective) +
                 ", permitted " + mask(after->permitted) + ")";
    // Under systemd the usual cause: SystemCallFilter=~@privileged also takes capset.
    if (!capset_error.empty()) {
      drop.error += ": " + capset_error + " (a seccomp filter? it must allow capset)";
    }
  } else if (after->inheritable != 0) {
    drop.warnings.push_back("inheritable capabilities remain: " + mask(after->inheritable));
  } else if (!capset_error.empty() && before->permitted != 0) {
    drop.warnings.push_back(capset_error + ", yet no capability remains");
  }
  return drop;
}

}  // namespace phalanx::worker
