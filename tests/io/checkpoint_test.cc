// Safetensors and checkpoint loading: a round trip, and one test per kind of corrupt or
// inconsistent input — each must give a clear Status (never a crash), also under the asan preset.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/ids.h"
#include "io/safetensors.h"
#include "model/deepseek_v3.h"

namespace r1 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("r1_ckpt_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A safetensors file from a raw header string and data bytes.
  std::string WriteRaw(const std::string& name, const std::string& header, const std::string& data,
                       int64_t declared_len = -1) {
    std::string out;
    const uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out += header + data;
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(WriteFileAtomic(path, out).ok());
    return path;
  }

  Status OpenStatus(const std::string& path) { return io::SafetensorsFile::Open(path).status(); }

  static void ExpectError(const Status& st, StatusCode code, const std::string& needle) {
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_NE(st.message().find(needle), std::string::npos) << "message: " << st.message() << "\nexpected to mention: " << needle;
  }

  fs::path dir_;
};

TEST_F(CheckpointTest, WriterRoundTripAllDtypes) {
  io::SafetensorsWriter w;
  const float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
  w.AddF32("a.f32", Shape{2, 3}, f);
  const uint16_t h[3] = {F32ToBf16(1.5f), F32ToBf16(-0.25f), F32ToBf16(3.0f)};
  w.Add("b.bf16", DType::kBF16, Shape{3}, h);
  const uint8_t q[4] = {0x38, 0x40, 0xb8, 0x00};
  w.Add("c.fp8", DType::kF8E4M3, Shape{2, 2}, q);
  const float s[1] = {0.5f};
  w.AddF32("c.fp8_scale_inv", Shape{1, 1}, s);
  ASSERT_TRUE(w.Write((dir_ / "model.safetensors").string()).ok());
  ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), std::string("{}")).ok());
  auto ck = io::Checkpoint::Open(dir_.string());
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ToF32((*ck)->Get("a.f32").value()), std::vector<float>(f, f + 6));
  EXPECT_EQ(ToF32((*ck)->Get("b.bf16").value()), (std::vector<float>{1.5f, -0.25f, 3.0f}));
  EXPECT_EQ(ToF32((*ck)->Get("c.fp8").value()), (std::vector<float>{0.5f, 1.0f, -0.5f, 0.0f}));
  ExpectError((*ck)->Get("nope").status(), StatusCode::kNotFound, "\"nope\"");
  ExpectError((*ck)->Get("a.f32", Shape{3, 2}).status(), StatusCode::kInvalidArgument, "[2, 3]");
}

// Views (not copied) and copies mixed in one file: the same bytes as a file of copies only, with
// each tensor where its header says; a copy taken by Add no longer follows its source.
TEST_F(CheckpointTest, WriterViewsGiveTheSameFileAsCopies) {
  std::vector<float> big(1000), small = {4, 5, 6};
  for (size_t i = 0; i < big.size(); ++i) big[i] = 0.5f * static_cast<float>(i) - 7.0f;
  const uint16_t h[2] = {F32ToBf16(2.0f), F32ToBf16(-3.0f)};
  io::SafetensorsWriter copies, views;
  copies.AddF32("big", Shape{10, 100}, big.data());
  copies.Add("h", DType::kBF16, Shape{2}, h);
  copies.AddF32("small", Shape{3}, small.data());
  views.AddF32View("big", Shape{10, 100}, big.data());
  views.Add("h", DType::kBF16, Shape{2}, h);
  views.AddF32View("small", Shape{3}, small.data());
  const std::string a = (dir_ / "copies.safetensors").string(), b = (dir_ / "model.safetensors").string();
  ASSERT_TRUE(copies.Write(a).ok());
  ASSERT_TRUE(views.Write(b).ok());
  EXPECT_EQ(ReadFileToString(a).value(), ReadFileToString(b).value());
  ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), std::string("{}")).ok());
  fs::remove(a);
  auto ck = io::Checkpoint::Open(dir_.string());
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ToF32((*ck)->Get("big").value()), big);
  EXPECT_EQ(ToF32((*ck)->Get("h").value()), (std::vector<float>{2.0f, -3.0f}));
  EXPECT_EQ(ToF32((*ck)->Get("small").value()), small);
  small[0] = 40;  // a view writes what its source holds at Write time, a copy what it held at Add
  ASSERT_TRUE(views.Write(b).ok());
  ASSERT_TRUE(copies.Write(a).ok());
  EXPECT_NE(ReadFileToString(a).value(), ReadFileToString(b).value());
}

TEST(WriteFileAtomic, PiecesAreWrittenInOrder) {
  const std::string path = (fs::path(::testing::TempDir()) / "r1_pieces.bin").string();
  const std::string x = "head", y, z = "tail";
  ASSERT_TRUE(WriteFileAtomic(path, {{x.data(), x.size()}, {y.data(), 0}, {z.data(), z.size()}}).ok());
  EXPECT_EQ(ReadFileToString(path).value(), "headtail");
  fs::remove(path);
}
TEST_F(CheckpointTest, TruncatedFile) {
  const std::string p = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteFileAtomic(p, std::string("\x05\x00\x00", 3)).ok());
  ExpectError(OpenStatus(p), StatusCode::kDataLoss, "truncated");
}

TEST_F(CheckpointTest, HeaderLengthPastEnd) {
  ExpectError(OpenStatus(WriteRaw("h.safetensors", "{}", "", 4096)), StatusCode::kDataLoss, "past the end");
  ExpectError(OpenStatus(WriteRaw("h2.safetensors", "{}", "", int64_t{1} << 60)), StatusCode::kDataLoss,
              "implausibly large");
}

TEST_F(CheckpointTest, BadJson) {
  ExpectError(OpenStatus(WriteRaw("j.safetensors", "{\"a\": [1, 2", "")), StatusCode::kDataLoss, "not valid JSON");
  ExpectError(OpenStatus(WriteRaw("j2.safetensors", "[1]", "")), StatusCode::kDataLoss, "not a JSON object");
  ExpectError(OpenStatus(WriteRaw("j3.safetensors", R"({"w": 5})", "")), StatusCode::kDataLoss, "not an object");
}

TEST_F(CheckpointTest, UnknownDtype) {
  const auto p = WriteRaw("d.safetensors", R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})",
                          std::string(4, '\0'));
  ExpectError(OpenStatus(p), StatusCode::kUnimplemented, "F16");
}

TEST_F(CheckpointTest, ShapeOffsetMismatch) {
  const auto p = WriteRaw("s.safetensors", R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})",
                          std::string(20, '\0'));
  ExpectError(OpenStatus(p), StatusCode::kDataLoss, "needs 24 bytes");
}

TEST_F(CheckpointTest, OutOfRangeOffsets) {
  const auto p = WriteRaw("o.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                          std::string(8, '\0'));
  ExpectError(OpenStatus(p), StatusCode::kDataLoss, "past the end of the data");
  const auto q = WriteRaw("o2.safetensors", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
                          std::string(8, '\0'));
  ExpectError(OpenStatus(q), StatusCode::kDataLoss, "begin 8 > end 4");
  const auto r = WriteRaw("o3.safetensors", R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
                          std::string(4, '\0'));
  ExpectError(OpenStatus(r), StatusCode::kDataLoss, "negative");
}

TEST_F(CheckpointTest, OverlappingOffsets) {
  const auto p = WriteRaw("v.safetensors",
                          R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          std::string(12, '\0'));
  ExpectError(OpenStatus(p), StatusCode::kDataLoss, "overlapping");
}

TEST_F(CheckpointTest, MisalignedDataIsCopiedNotMisread) {
  // A 3-byte header leaves f32 data at an odd address; values must still read correctly.
  float v = 2.5f;
  std::string data(reinterpret_cast<const char*>(&v), 4);
  std::string header = R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
  header += " ";  // 8 + header length is now odd
  if ((8 + header.size()) % 4 == 0) header += " ";
  auto f = io::SafetensorsFile::Open(WriteRaw("m.safetensors", header, data));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const TensorView& t = (*f)->tensors().at("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u);
  EXPECT_EQ(t.f32()[0], 2.5f);
}

TEST_F(CheckpointTest, Fp8NeedsWellShapedScales) {
  io::SafetensorsWriter w;
  std::vector<uint8_t> q(130 * 4, 0x38);
  w.Add("m.weight", DType::kF8E4M3, Shape{130, 4}, q.data());
  ASSERT_TRUE(w.Write((dir_ / "model.safetensors").string()).ok());
  ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), std::string("{}")).ok());
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kDataLoss, "m.weight_scale_inv");
  const float s[1] = {1.0f};  // should be [2, 1]
  w.AddF32("m.weight_scale_inv", Shape{1, 1}, s);
  ASSERT_TRUE(w.Write((dir_ / "model.safetensors").string()).ok());
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kDataLoss, "[2, 1]");
}

TEST_F(CheckpointTest, ShardIndexProblems) {
  ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), std::string("{}")).ok());
  io::SafetensorsWriter w;
  const float f[2] = {1, 2};
  w.AddF32("a", Shape{2}, f);
  ASSERT_TRUE(w.Write((dir_ / "s1.safetensors").string()).ok());
  auto index = [&](const json& j) { ASSERT_TRUE(WriteFileAtomic((dir_ / "model.safetensors.index.json").string(), j.dump()).ok()); };
  index({{"weight_map", {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}}});
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kNotFound, "s2.safetensors");
  index({{"weight_map", {{"a", "s1.safetensors"}, {"b", "s1.safetensors"}}}});
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kDataLoss, "\"b\"");
  index({{"weight_map", {{"a", "../s1.safetensors"}}}});
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kDataLoss, "not a file in the directory");
  index({{"metadata", {}}});
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kDataLoss, "weight_map");
  index({{"weight_map", {{"a", "s1.safetensors"}}}});
  EXPECT_TRUE(io::Checkpoint::Open(dir_.string()).ok());
}

TEST_F(CheckpointTest, MissingFiles) {
  ExpectError(io::Checkpoint::Open((dir_ / "none").string()).status(), StatusCode::kNotFound, "no such checkpoint");
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kNotFound, "config.json");
  ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), std::string("{}")).ok());
  ExpectError(io::Checkpoint::Open(dir_.string()).status(), StatusCode::kNotFound, "model.safetensors");
}

// A fixture copied to a scratch directory, with one file replaced.
class BrokenModelTest : public CheckpointTest {
 protected:
  std::string CopyFixture(const std::string& variant) {
    const fs::path src = fs::path(R1_SOURCE_DIR) / "tests/fixtures" / variant;
    for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), dir_ / e.path().filename());
    return dir_.string();
  }
  json Config() { return json::parse(ReadFileToString((dir_ / "config.json").string()).value()); }
  void SetConfig(const json& j) { ASSERT_TRUE(WriteFileAtomic((dir_ / "config.json").string(), j.dump()).ok()); }
};

TEST_F(BrokenModelTest, MissingTensorIsNamed) {
  const std::string d = CopyFixture("tiny-f32-qlora");
  auto ck = io::Checkpoint::Open(d);
  ASSERT_TRUE(ck.ok());
  // Rewrite the checkpoint without one tensor.
  io::SafetensorsWriter w;
  for (const auto& name : (*ck)->Names()) {
    if (name == "model.layers.1.mlp.experts.3.up_proj.weight") continue;
    const TensorView v = (*ck)->Get(name).value();
    w.Add(name, v.dtype, v.shape, v.data);
  }
  ck.value().reset();
  ASSERT_TRUE(w.Write(d + "/model.safetensors").ok());
  ExpectError(DeepSeekV3::Load(d).status(), StatusCode::kNotFound, "model.layers.1.mlp.experts.3.up_proj.weight");
}

TEST_F(BrokenModelTest, ConfigFieldErrorsNameTheField) {
  const std::string d = CopyFixture("tiny-fp8");
  const json good = Config();
  struct Case {
    std::function<void(json&)> edit;
    StatusCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["hidden_size"] = "64"; }, StatusCode::kInvalidArgument, "\"hidden_size\" must be an integer"},
      {[](json& j) { j.erase("kv_lora_rank"); }, StatusCode::kInvalidArgument, "missing field \"kv_lora_rank\""},
      {[](json& j) { j["model_type"] = "llama"; }, StatusCode::kUnimplemented, "model_type \"llama\""},
      {[](json& j) { j["n_group"] = 3; }, StatusCode::kInvalidArgument, "n_group"},
      {[](json& j) { j["topk_group"] = 9; }, StatusCode::kInvalidArgument, "topk_group"},
      {[](json& j) { j["num_experts_per_tok"] = 7; }, StatusCode::kInvalidArgument, "num_experts_per_tok"},
      {[](json& j) { j["qk_rope_head_dim"] = 7; }, StatusCode::kInvalidArgument, "qk_rope_head_dim"},
      {[](json& j) { j["rope_scaling"]["type"] = "dynamic"; }, StatusCode::kUnimplemented, "dynamic"},
      {[](json& j) { j["rope_scaling"] = 3; }, StatusCode::kInvalidArgument, "rope_scaling"},
      {[](json& j) { j["scoring_func"] = "softmax"; }, StatusCode::kUnimplemented, "softmax"},
      {[](json& j) { j["norm_topk_prob"] = 1; }, StatusCode::kInvalidArgument, "norm_topk_prob"},
      {[](json& j) { j["first_k_dense_replace"] = 9; }, StatusCode::kInvalidArgument, "first_k_dense_replace"},
      {[](json& j) { j["eos_token_id"] = 100000; }, StatusCode::kInvalidArgument, "eos_token_id"},
      // A config that disagrees with the tensors: the shape error names the tensor.
      {[](json& j) { j["kv_lora_rank"] = 16; }, StatusCode::kInvalidArgument, "kv_a_proj_with_mqa.weight"},
  };
  for (const auto& c : cases) {
    json j = good;
    c.edit(j);
    SetConfig(j);
    ExpectError(DeepSeekV3::Load(d).status(), c.code, c.needle);
  }
  ASSERT_TRUE(WriteFileAtomic(d + "/config.json", std::string("{\"model_type\": ")).ok());
  ExpectError(DeepSeekV3::Load(d).status(), StatusCode::kInvalidArgument, "not valid JSON");
  SetConfig(good);
  EXPECT_TRUE(DeepSeekV3::Load(d).ok());
}

TEST(Ids, ParseErrorsNamePosition) {
  EXPECT_EQ(io::ParseIds(" 1 2\n3\t", "x").value(), (std::vector<int32_t>{1, 2, 3}));
  auto bad = io::ParseIds("1 2 x3 4", "f.ids");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token 3 is \"x3\""), std::string::npos) << bad.status().message();
  EXPECT_FALSE(io::ParseIds("-1", "f").ok());
  EXPECT_FALSE(io::ParseIds("99999999999", "f").ok());
}

}  // namespace
}  // namespace r1
