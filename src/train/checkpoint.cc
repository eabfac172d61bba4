#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/safetensors.h"

namespace r1::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string Parent(const std::string& dir) {
  const fs::path p = fs::path(dir).lexically_normal().parent_path();
  return p.empty() ? "." : p.string();
}

// Removes `dir.tmp.<pid>` directories left by processes that died while saving.
void RemoveStaleTemporaries(const std::string& dir) {
  const fs::path p(dir);
  const std::string prefix = p.filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Parent(dir), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;  // still alive
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace

bool IsTrainingCheckpoint(const std::string& dir) { return FileExists(dir + "/trainer_state.json"); }

Status CopyTokenizerFiles(const std::string& from, const std::string& to) {
  if (from.empty()) return Status::Ok();
  const std::string src_dir = IsDirectory(from) ? from : fs::path(from).parent_path().string();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const std::string src = (IsDirectory(from) || std::string(name) != "tokenizer.json") ? src_dir + "/" + name : from;
    if (!FileExists(src)) continue;
    R1_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(src));
    R1_RETURN_IF_ERROR(WriteFileAtomic(to + "/" + name, bytes));
  }
  return Status::Ok();
}

Status SaveCheckpoint(const std::string& dir, const ParameterStore& store, AdamW* opt, const TrainerState& state,
                      const std::string& tokenizer_dir) {
  if (fs::exists(dir) && !IsDirectory(dir)) return InvalidArgument(dir + ": exists and is not a directory");
  if (IsDirectory(dir) && !fs::is_empty(dir) && !IsTrainingCheckpoint(dir) && !FileExists(dir + "/config.json"))
    return InvalidArgument(dir + ": exists and is not a checkpoint; refusing to replace it");
  RemoveStaleTemporaries(dir);
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec)) return IoError(tmp + ": cannot create: " + ec.message());
  auto fail = [&](const Status& st) {
    fs::remove_all(tmp, ec);
    return st;
  };
  Status st = store.SaveCheckpoint(tmp, DType::kF32);
  if (!st.ok()) return fail(st);
  if (!(st = CopyTokenizerFiles(tokenizer_dir, tmp)).ok()) return fail(st);
  if (opt) {
    io::SafetensorsWriter w;
    const auto& params = store.params();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].trainable) continue;
      w.AddF32View("m." + params[i].spec.name, params[i].spec.shape, opt->m()[i].data());
      w.AddF32View("v." + params[i].spec.name, params[i].spec.shape, opt->v()[i].data());
    }
    w.SetMetadata("adam_step", std::to_string(opt->step()));
    if (!(st = w.Write(tmp + "/optimizer.safetensors")).ok()) return fail(st);
  }
  json j = {{"format_version", 1},
            {"stage", state.stage},
            {"step", state.step},
            {"cursor", state.cursor},
            {"tokens", state.tokens},
            {"seed", state.seed},
            {"precision", state.precision},
            {"rng", {state.rng.s[0], state.rng.s[1], state.rng.s[2], state.rng.s[3]}},
            {"rng_spare", state.rng.spare},
            {"rng_has_spare", state.rng.has_spare},
            {"adam_step", opt ? opt->step() : 0}};
  if (!(st = WriteFileAtomic(tmp + "/trainer_state.json", j.dump(2) + "\n")).ok()) return fail(st);
  SyncDir(tmp);
  // Swap the new directory in: atomic whether or not an old one exists.
  if (IsDirectory(dir)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0)
      return fail(IoError(dir + ": cannot swap in the new checkpoint: " + std::strerror(errno)));
    fs::remove_all(tmp, ec);  // now the previous checkpoint
  } else if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    return fail(IoError(dir + ": cannot rename the new checkpoint into place: " + std::strerror(errno)));
  }
  SyncDir(Parent(dir));
  return Status::Ok();
}

Status LoadTrainingState(const std::string& dir, const ParameterStore& store, AdamW* opt, TrainerState* state) {
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(dir + "/trainer_state.json"));
  json j = json::parse(text, nullptr, false);
  const std::string where = dir + "/trainer_state.json";
  if (j.is_discarded() || !j.is_object()) return DataLoss(where + ": not valid JSON");
  try {
    if (j.at("format_version").get<int>() != 1) return Unimplemented(where + ": unknown format_version");
    state->stage = j.at("stage").get<std::string>();
    state->step = j.at("step").get<int64_t>();
    state->cursor = j.at("cursor").get<int64_t>();
    state->tokens = j.at("tokens").get<int64_t>();
    state->seed = j.at("seed").get<uint64_t>();
    state->precision = j.value("precision", std::string("f32"));  // absent before bf16 training
    for (int i = 0; i < 4; ++i) state->rng.s[i] = j.at("rng").at(i).get<uint64_t>();
    state->rng.spare = j.at("rng_spare").get<double>();
    state->rng.has_spare = j.at("rng_has_spare").get<bool>();
  } catch (const json::exception& e) {
    return DataLoss(where + ": " + e.what());
  }
  if (!opt) return Status::Ok();
  R1_ASSIGN_OR_RETURN(auto f, io::SafetensorsFile::Open(dir + "/optimizer.safetensors"));
  const auto& params = store.params();
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].trainable) continue;
    for (const char* which : {"m.", "v."}) {
      const std::string name = which + params[i].spec.name;
      auto it = f->tensors().find(name);
      if (it == f->tensors().end()) return DataLoss(dir + "/optimizer.safetensors: missing \"" + name + "\"");
      if (it->second.dtype != DType::kF32 || !(it->second.shape == params[i].spec.shape))
        return DataLoss(dir + "/optimizer.safetensors: \"" + name + "\" has the wrong dtype or shape");
      std::vector<float>& dst = which[0] == 'm' ? opt->m()[i] : opt->v()[i];
      const float* src = it->second.f32();
      dst.assign(src, src + dst.size());
    }
  }
  const auto meta = f->metadata().find("adam_step");
  if (meta == f->metadata().end()) return DataLoss(dir + "/optimizer.safetensors: no adam_step metadata");
  char* end = nullptr;
  const long long adam_step = std::strtoll(meta->second.c_str(), &end, 10);
  if (end == meta->second.c_str() || *end != '\0' || adam_step < 0)
    return DataLoss(dir + "/optimizer.safetensors: adam_step \"" + meta->second + "\" is not a step count");
  opt->set_step(adam_step);
  return Status::Ok();
}

}  // namespace r1::train
