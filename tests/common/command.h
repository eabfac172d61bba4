// End-to-end tests run commands — usually the r1 binary under test — and look at their exit code,
// stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "core/file.h"

namespace r1::test_util {

struct CmdResult {
  int code = -1;  // exit status; −1 if the command did not exit normally
  std::string out, err;
  double seconds = 0;
};

// Runs `cmd` through the shell. stderr goes to a temporary file of its own (tests run in
// parallel), read back and removed.
inline CmdResult RunShell(const std::string& cmd) {
  static int counter = 0;
  const std::string err_path = ::testing::TempDir() + "/r1_cmd_stderr." + std::to_string(::getpid()) + "." +
                               std::to_string(counter++) + ".txt";
  const auto t0 = std::chrono::steady_clock::now();
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto err = ReadFileToString(err_path);
  if (err.ok()) r.err = std::move(err).value();
  std::remove(err_path.c_str());
  return r;
}

// A path under the test temporary directory that no other test process uses: ctest runs the
// tests of one binary as parallel processes, so fixed names would collide.
inline std::string UniqueTempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(::getpid());
}

// Runs the r1 binary under test (R1_BINARY) with `args`.
inline CmdResult RunR1(const std::string& args) { return RunShell(std::string(R1_BINARY) + " " + args); }

}  // namespace r1::test_util
