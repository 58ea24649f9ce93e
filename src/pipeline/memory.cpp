#include "standin/pipeline/memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "standin/core/files.hpp"

namespace standin::pipeline {

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

Status check_memory(const std::vector<MemoryTerm>& terms, int64_t budget_bytes, int64_t in_use_bytes) {
  double total = 0;
  const MemoryTerm* largest = nullptr;
  for (const auto& term : terms) {
    total += term.bytes;
    if (!largest || term.bytes > largest->bytes) largest = &term;
  }
  const double available = std::max<double>(0, static_cast<double>(budget_bytes) - static_cast<double>(in_use_bytes));
  if (!largest || total <= available) return Status::success();
  std::string message = largest->what + " need at least " + format_bytes(total) + " of memory";
  if (largest->bytes < 0.9 * total) message += " (" + format_bytes(largest->bytes) + " of it for this)";
  message += ", more than the " + format_bytes(available) + " available (" +
             format_bytes(static_cast<double>(budget_bytes)) + " on this machine";
  if (in_use_bytes > 0) message += ", " + format_bytes(static_cast<double>(in_use_bytes)) + " already in use";
  message += ")";
  if (!largest->advice.empty()) message += "; " + largest->advice;
  return Error{largest->code, message};
}

}  // namespace standin::pipeline
