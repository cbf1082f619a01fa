#include "shared/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace phalanx::shared {

void setupErrorLog(const std::string& role, const std::string& level) {
  // Not registered by name: a process may set up its log twice (config reload).
  auto logger =
      std::make_shared<spdlog::logger>(role, std::make_shared<spdlog::sinks::stderr_sink_st>());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%n] %l: %v");
  auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; validated configs never get here with one.
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace phalanx::shared
