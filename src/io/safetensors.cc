#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace r1::io {
namespace {

using json = nlohmann::json;

// Headers of real checkpoints are a few MB; anything past this is a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

std::string Join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path,
                                                               const LoadOptions& opts) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  R1_ASSIGN_OR_RETURN(f->file_, MappedFile::Open(path, !opts.mmap));
  R1_RETURN_IF_ERROR(f->Parse().WithContext(path));
  return f;
}

Status SafetensorsFile::Parse() {
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  if (size < 8) return DataLoss("truncated file: " + std::to_string(size) + " bytes, no header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n > kMaxHeaderBytes) return DataLoss("header length " + std::to_string(n) + " is implausibly large");
  if (8 + n > size)
    return DataLoss("header length " + std::to_string(n) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  json header = json::parse(base + 8, base + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return DataLoss("header is not valid JSON");
  if (!header.is_object()) return DataLoss("header is not a JSON object");

  const uint8_t* data = base + 8 + n;
  const uint64_t data_size = size - 8 - n;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return DataLoss("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items())
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    const std::string where = "tensor \"" + name + "\"";
    if (!entry.is_object()) return DataLoss(where + ": entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string())
      return DataLoss(where + ": missing or non-string \"dtype\"");
    auto dtype = ParseDType(entry["dtype"].get<std::string>());
    if (!dtype.ok()) return dtype.status().WithContext(where);
    if (!entry.contains("shape") || !entry["shape"].is_array())
      return DataLoss(where + ": missing or non-array \"shape\"");
    std::vector<int64_t> dims;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) return DataLoss(where + ": shape has a non-integer or negative dimension");
      if (d.get<uint64_t>() > (1ull << 40)) return DataLoss(where + ": shape dimension is implausibly large");
      dims.push_back(d.get<int64_t>());
    }
    if (dims.size() > kMaxDims)
      return Unimplemented(where + ": " + std::to_string(dims.size()) + "-D tensors are not supported");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2 || !entry["data_offsets"][0].is_number_unsigned() ||
        !entry["data_offsets"][1].is_number_unsigned())
      return DataLoss(where + ": \"data_offsets\" must be two non-negative integers");
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    if (begin > end) return DataLoss(where + ": data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
    if (end > data_size)
      return DataLoss(where + ": data_offsets end " + std::to_string(end) +
                      " is past the end of the data (" + std::to_string(data_size) + " bytes)");
    Shape shape = Shape::FromVector(dims);
    // numel with overflow guard
    unsigned __int128 bytes = DTypeSize(*dtype);
    for (int64_t d : dims) bytes *= static_cast<uint64_t>(d);
    if (bytes != end - begin)
      return DataLoss(where + ": shape " + shape.ToString() + " of " + DTypeName(*dtype) + " needs " +
                      std::to_string(static_cast<uint64_t>(bytes)) + " bytes but data_offsets span " +
                      std::to_string(end - begin));
    const uint8_t* p = data + begin;
    const size_t elem = DTypeSize(*dtype);
    if (reinterpret_cast<uintptr_t>(p) % elem != 0) {
      realigned_.emplace_back(p, p + (end - begin));
      p = realigned_.back().data();
    }
    tensors_[name] = TensorView{p, *dtype, shape, nullptr};
    ranges.push_back({begin, end, name});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      return DataLoss("tensors \"" + ranges[i - 1].name + "\" and \"" + ranges[i].name +
                      "\" have overlapping data_offsets");
  return Status::Ok();
}

Result<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir, const LoadOptions& opts) {
  if (!IsDirectory(dir)) {
    if (FileExists(dir)) return InvalidArgument(dir + ": expected a checkpoint directory, got a file");
    return NotFound(dir + ": no such checkpoint directory");
  }
  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  ck->dir_ = dir;
  R1_ASSIGN_OR_RETURN(ck->config_text_, ReadFileToString(Join(dir, "config.json")));

  const std::string single = Join(dir, "model.safetensors");
  const std::string index = Join(dir, "model.safetensors.index.json");
  if (FileExists(single)) {
    R1_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(single, opts));
    R1_RETURN_IF_ERROR(ck->AddFile(std::move(f), nullptr));
  } else if (FileExists(index)) {
    R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return DataLoss(index + ": not valid JSON");
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      return DataLoss(index + ": missing \"weight_map\" object");
    std::map<std::string, std::map<std::string, std::string>> by_file;  // file -> name -> file
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) return DataLoss(index + ": weight_map[\"" + name + "\"] is not a string");
      const std::string fname = file.get<std::string>();
      if (fname.find('/') != std::string::npos || fname.empty())
        return DataLoss(index + ": weight_map[\"" + name + "\"] names \"" + fname + "\", not a file in the directory");
      by_file[fname][name] = fname;
    }
    if (by_file.empty()) return DataLoss(index + ": weight_map is empty");
    for (const auto& [fname, names] : by_file) {
      R1_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(Join(dir, fname), opts));
      R1_RETURN_IF_ERROR(ck->AddFile(std::move(f), &names));
    }
  } else {
    return NotFound(dir + ": neither model.safetensors nor model.safetensors.index.json exists");
  }
  R1_RETURN_IF_ERROR(ck->JoinScales());
  return ck;
}

Status Checkpoint::AddFile(std::unique_ptr<SafetensorsFile> f,
                           const std::map<std::string, std::string>* expected) {
  if (expected) {
    for (const auto& [name, _] : *expected)
      if (!f->tensors().count(name))
        return DataLoss(f->path() + ": the index lists tensor \"" + name + "\" in this file but it is not there");
  }
  for (const auto& [name, view] : f->tensors()) {
    if (expected && !expected->count(name)) continue;  // present but the index maps it elsewhere
    if (!tensors_.emplace(name, view).second)
      return DataLoss(f->path() + ": tensor \"" + name + "\" appears in more than one file");
  }
  files_.push_back(std::move(f));
  return Status::Ok();
}

Status Checkpoint::JoinScales() {
  static const std::string kSuffix = "_scale_inv";
  for (auto& [name, view] : tensors_) {
    if (view.dtype != DType::kF8E4M3) continue;
    auto it = tensors_.find(name + kSuffix);
    if (it == tensors_.end())
      return DataLoss(dir_ + ": FP8 tensor \"" + name + "\" has no \"" + name + kSuffix + "\" block scales");
    const TensorView& s = it->second;
    const int64_t sr = (view.rows() + kFp8Block - 1) / kFp8Block;
    const int64_t sc = (view.cols() + kFp8Block - 1) / kFp8Block;
    if (s.dtype != DType::kF32 || s.shape.ndim != 2 || s.shape[0] != sr || s.shape[1] != sc)
      return DataLoss(dir_ + ": \"" + name + kSuffix + "\" must be F32 [" + std::to_string(sr) + ", " +
                      std::to_string(sc) + "] for a " + view.shape.ToString() + " weight, got " +
                      DTypeName(s.dtype) + " " + s.shape.ToString());
    view.scale_inv = s.f32();
  }
  return Status::Ok();
}

Result<TensorView> Checkpoint::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return NotFound(dir_ + ": missing tensor \"" + name + "\"");
  return it->second;
}

Result<TensorView> Checkpoint::Get(const std::string& name, const Shape& shape) const {
  R1_ASSIGN_OR_RETURN(TensorView v, Get(name));
  if (!(v.shape == shape))
    return InvalidArgument(dir_ + ": tensor \"" + name + "\" has shape " + v.shape.ToString() +
                           ", the config implies " + shape.ToString());
  return v;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : tensors_) out.push_back(n);
  return out;
}

size_t Checkpoint::TotalBytes() const {
  size_t b = 0;
  for (const auto& [_, v] : tensors_) b += v.nbytes();
  return b;
}

void SafetensorsWriter::Add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  const size_t n = static_cast<size_t>(shape.numel()) * DTypeSize(dtype);
  const auto* p = static_cast<const uint8_t*>(data);
  entries_.push_back(Entry{name, dtype, shape, std::vector<uint8_t>(p, p + n), nullptr, n});
}

void SafetensorsWriter::AddView(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  const size_t n = static_cast<size_t>(shape.numel()) * DTypeSize(dtype);
  entries_.push_back(Entry{name, dtype, shape, {}, data, n});
}

Status SafetensorsWriter::Write(const std::string& path) const {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    std::vector<int64_t> dims(e.shape.dims.begin(), e.shape.dims.begin() + e.shape.ndim);
    header[e.name] = {{"dtype", DTypeName(e.dtype)}, {"shape", dims}, {"data_offsets", {offset, offset + e.size}}};
    offset += e.size;
  }
  json meta = json::object();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  if (meta.empty()) meta["format"] = "pt";
  header["__metadata__"] = meta;
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // keep the data 8-byte aligned
  // The 8-byte little-endian header length, then the header.
  std::string head;
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) head.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  head += h;
  // Written piece by piece from where the tensors are: no second copy of the whole file in memory.
  std::vector<ConstBytes> parts{{head.data(), head.size()}};
  for (const auto& e : entries_) parts.push_back({e.view != nullptr ? e.view : e.bytes.data(), e.size});
  return WriteFileAtomic(path, parts);
}

}  // namespace r1::io
