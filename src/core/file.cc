#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace r1 {
namespace {
std::string ErrnoText() { return std::strerror(errno); }
}  // namespace

Result<std::string> ReadFileToString(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + ErrnoText());
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = ErrnoText();
      ::close(fd);
      return IoError(path + ": read failed: " + err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status WriteFileAtomic(const std::string& path, const void* data, size_t size) {
  return WriteFileAtomic(path, std::vector<ConstBytes>{{data, size}});
}

Status WriteFileAtomic(const std::string& path, const std::vector<ConstBytes>& parts) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(tmp + ": cannot create: " + ErrnoText());
  for (const ConstBytes& part : parts) {
    const auto* p = static_cast<const char*>(part.data);
    size_t left = part.size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        const std::string err = ErrnoText();
        ::close(fd);
        ::unlink(tmp.c_str());
        return IoError(tmp + ": write failed: " + err);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string err = ErrnoText();
    ::unlink(tmp.c_str());
    return IoError(tmp + ": flush failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = ErrnoText();
    ::unlink(tmp.c_str());
    return IoError(path + ": rename failed: " + err);
  }
  return Status::Ok();
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

MappedFile::~MappedFile() {
  if (mapped_size_ != 0) ::munmap(const_cast<uint8_t*>(data_), mapped_size_);
}

Result<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path,
                                                     bool load_into_memory) {
  std::unique_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + ErrnoText());
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string err = ErrnoText();
    ::close(fd);
    return IoError(path + ": stat failed: " + err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a regular file");
  }
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ == 0) {
    ::close(fd);
    return f;
  }
  if (load_into_memory) {
    // Anonymous memory in whole 2 MiB pages where the kernel grants them: decode streams every
    // weight once per token, and with 4 KiB pages a TLB walk lands every 4 KiB of that stream.
    constexpr size_t kHugePage = size_t{2} << 20;
    const size_t bytes = (f->size_ + kHugePage - 1) / kHugePage * kHugePage;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      const std::string err = ErrnoText();
      ::close(fd);
      return IoError(path + ": cannot allocate " + std::to_string(f->size_) + " bytes: " + err);
    }
    ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without it the copy still works
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_size_ = bytes;
    auto* dst = static_cast<uint8_t*>(p);
    size_t done = 0;
    while (done < f->size_) {
      const ssize_t n = ::pread(fd, dst + done, f->size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string err = n < 0 ? ErrnoText() : "unexpected end of file";
        ::close(fd);
        return IoError(path + ": read failed: " + err);
      }
      done += static_cast<size_t>(n);
    }
  } else {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string err = ErrnoText();
      ::close(fd);
      return IoError(path + ": mmap failed: " + err);
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_size_ = f->size_;
  }
  ::close(fd);
  return f;
}

}  // namespace r1
