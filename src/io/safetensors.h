// Safetensors files and Hugging Face checkpoint directories (spec §7.1).
//
// File layout: u64 little-endian N, N bytes of JSON header
//   {name: {"dtype": "F32"|"BF16"|"F8_E4M3", "shape": [...], "data_offsets": [begin, end]},
//    "__metadata__": {...}}
// then the tensor bytes; offsets are relative to the end of the header. Every header field is
// validated before a byte of data is touched: lengths past the end, unknown dtypes, shapes that
// disagree with the byte ranges, and overlapping or out-of-range offsets are errors naming the
// file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "core/tensor.h"

namespace r1::io {

struct LoadOptions {
  bool mmap = true;  // false: read the files into plain memory (--no-mmap)
};

// One open .safetensors file. Views point into its mapping and live as long as it does.
class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path,
                                                       const LoadOptions& opts = {});

  const std::string& path() const { return file_->path(); }
  // Tensors by name, in header order of their offsets.
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  Status Parse();

  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
  // Copies of tensors whose bytes in the file are not aligned to their element size.
  std::vector<std::vector<uint8_t>> realigned_;
};

// A Hugging Face model directory: config.json and model.safetensors, or shards listed in
// model.safetensors.index.json. FP8 tensors are joined with their `<name>_scale_inv` block
// multipliers (validated shape [ceil(rows/128), ceil(cols/128)]).
class Checkpoint {
 public:
  static Result<std::unique_ptr<Checkpoint>> Open(const std::string& dir,
                                                  const LoadOptions& opts = {});

  const std::string& dir() const { return dir_; }
  // The text of config.json.
  const std::string& config_text() const { return config_text_; }

  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor, or kNotFound naming it and the directory.
  Result<TensorView> Get(const std::string& name) const;
  // Same, and its shape must equal `shape` (kInvalidArgument naming both shapes otherwise).
  Result<TensorView> Get(const std::string& name, const Shape& shape) const;
  std::vector<std::string> Names() const;
  // Bytes of tensor data over all files.
  size_t TotalBytes() const;

 private:
  Checkpoint() = default;
  Status AddFile(std::unique_ptr<SafetensorsFile> f, const std::map<std::string, std::string>* expected);
  Status JoinScales();

  std::string dir_;
  std::string config_text_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorView> tensors_;
};

// Writes a safetensors file atomically (temporary file, then rename).
class SafetensorsWriter {
 public:
  // Bytes are copied. `shape` must match the byte count.
  void Add(const std::string& name, DType dtype, const Shape& shape, const void* data);
  void AddF32(const std::string& name, const Shape& shape, const float* data) {
    Add(name, DType::kF32, shape, data);
  }
  // Bytes are not copied: `data` must stay valid and unchanged until Write returns. Saves a
  // checkpoint's worth of memory and copying when the tensors already live in memory.
  void AddView(const std::string& name, DType dtype, const Shape& shape, const void* data);
  void AddF32View(const std::string& name, const Shape& shape, const float* data) {
    AddView(name, DType::kF32, shape, data);
  }
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<uint8_t> bytes;  // owned copy (Add), or empty with `view` set (AddView)
    const void* view = nullptr;
    size_t size = 0;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace r1::io
