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
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(tmp + ": cannot create: " + ErrnoText());
  const auto* p = static_cast<const char*>(data);
  size_t left = size;
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
  if (mapped_ && data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
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
    f->owned_.resize(f->size_);
    size_t done = 0;
    while (done < f->size_) {
      const ssize_t n = ::pread(fd, f->owned_.data() + done, f->size_ - done,
                                static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string err = n < 0 ? ErrnoText() : "unexpected end of file";
        ::close(fd);
        return IoError(path + ": read failed: " + err);
      }
      done += static_cast<size_t>(n);
    }
    f->data_ = f->owned_.data();
  } else {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string err = ErrnoText();
      ::close(fd);
      return IoError(path + ": mmap failed: " + err);
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);
  return f;
}

}  // namespace r1
