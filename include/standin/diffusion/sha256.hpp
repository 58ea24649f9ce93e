#pragma once
// A compact SHA-256 (FIPS 180-4) so bundle checksums need no crypto dependency.
#include <cstddef>
#include <cstdint>
#include <string>

#include "standin/core/error.hpp"

namespace standin::diffusion {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // Finishes the digest; returns 64 lowercase hex characters. The object is then spent.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(const std::string& bytes);
// Streams the file in 1 MiB blocks; Error::bad_input if it cannot be read.
Result<std::string> sha256_file(const std::string& path);

}  // namespace standin::diffusion
