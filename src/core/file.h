// Files: whole-file reads, crash-safe writes (temporary file + fsync + rename) and read-only
// mappings. A mapping is either mmap'ed or, with `load_into_memory`, read into plain memory:
// idle mapped pages can be paged out, which slows decode on small machines (`--no-mmap`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1 {

Result<std::string> ReadFileToString(const std::string& path);
// Writes to `path.tmp.<pid>`, fsyncs, then renames over `path`: a crash leaves the old file whole.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size);
// The same for a file made of several pieces, written in order without joining them first.
struct ConstBytes {
  const void* data;
  size_t size;
};
Status WriteFileAtomic(const std::string& path, const std::vector<ConstBytes>& parts);
inline Status WriteFileAtomic(const std::string& path, const std::string& s) {
  return WriteFileAtomic(path, s.data(), s.size());
}
bool FileExists(const std::string& path);
bool IsDirectory(const std::string& path);

class MappedFile {
 public:
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path, bool load_into_memory);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_size_ = 0;  // bytes to munmap: the file mapping, or the loaded copy
};

}  // namespace r1
