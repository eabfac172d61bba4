// Training data: window order (an interface), document masking, chat packing and loss masks.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/file.h"
#include "train/data.h"
#include "train/optimizer.h"

namespace r1::train {
namespace {

std::string Tmp(const std::string& name) { return ::testing::TempDir() + "/r1_data_" + name; }

TEST(Data, IdsWindowsInOrderWithoutShuffle) {
  std::string text;
  for (int i = 0; i < 41; ++i) text += std::to_string(i + 10) + " ";
  ASSERT_TRUE(WriteFileAtomic(Tmp("a.ids"), text).ok());
  auto d = Dataset::Load(Tmp("a.ids"), 8, nullptr, 100);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_windows(), 5);  // (41 − 1) / 8
  TrainBatch b;
  // Step s with batch B takes windows s·B … s·B+B−1: step 1, B = 2 → windows 2 and 3.
  d->Fill(1 * 2, 2, /*shuffle=*/false, 0, &b);
  for (int r = 0; r < 2; ++r)
    for (int t = 0; t < 8; ++t) {
      const int j = 2 + r;
      EXPECT_EQ(b.ids[r * 8 + t], 10 + j * 8 + t);
      EXPECT_EQ(b.targets[r * 8 + t], 10 + j * 8 + t + 1);
      EXPECT_EQ(b.doc[r * 8 + t], 0);
    }
  // Past the end it wraps into the next epoch.
  d->Fill(5, 1, false, 0, &b);
  EXPECT_EQ(b.ids[0], 10);
}

TEST(Data, BinAndShuffleIsAPermutationPerEpoch) {
  std::vector<uint32_t> ids(101);
  for (uint32_t i = 0; i < ids.size(); ++i) ids[i] = i;
  ASSERT_TRUE(WriteFileAtomic(Tmp("b.bin"), ids.data(), ids.size() * 4).ok());
  auto d = Dataset::Load(Tmp("b.bin"), 10, nullptr, 200);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->num_windows(), 10);
  std::vector<int64_t> seen;
  for (int c = 0; c < 10; ++c) seen.push_back(d->WindowAt(c, true, 7));
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(seen, sorted);  // (a fixed seed whose permutation is not the identity)
  // Same seed, same order; the next epoch differs.
  for (int c = 0; c < 10; ++c) EXPECT_EQ(d->WindowAt(c, true, 7), seen[c]);
  bool differs = false;
  for (int c = 0; c < 10; ++c) differs |= d->WindowAt(10 + c, true, 7) != seen[c];
  EXPECT_TRUE(differs);
}

TEST(Data, BadInputsNameTheProblem) {
  ASSERT_TRUE(WriteFileAtomic(Tmp("c.bin"), std::string("abc")).ok());
  EXPECT_NE(Dataset::Load(Tmp("c.bin"), 4, nullptr, 100).status().message().find("whole number"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(Tmp("d.ids"), std::string("1 2 3 500 4 5")).ok());
  EXPECT_NE(Dataset::Load(Tmp("d.ids"), 2, nullptr, 100).status().message().find("outside the model's vocabulary"),
            std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(Tmp("e.ids"), std::string("1 2")).ok());
  EXPECT_NE(Dataset::Load(Tmp("e.ids"), 4, nullptr, 100).status().message().find("do not fill one window"),
            std::string::npos);
  EXPECT_NE(Dataset::Load(Tmp("f.txt"), 4, nullptr, 100).status().message().find("unknown data format"),
            std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(Tmp("g.jsonl"), std::string("{\"text\": \"hi\"}\n")).ok());
  EXPECT_NE(Dataset::Load(Tmp("g.jsonl"), 4, nullptr, 100).status().message().find("needs a tokenizer"),
            std::string::npos);
}

TEST(Schedule, WarmupThenCosine) {
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule::kConstant, 1.0f, 0.0f, 0, 100, 50), 1.0f);
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule::kCosine, 1.0f, 0.1f, 10, 110, 0), 0.1f);   // warmup 1/10
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule::kCosine, 1.0f, 0.1f, 10, 110, 9), 1.0f);
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule::kCosine, 1.0f, 0.1f, 10, 110, 10), 1.0f);
  EXPECT_NEAR(LearningRate(LrSchedule::kCosine, 1.0f, 0.1f, 10, 110, 60), 0.55f, 1e-6);
  EXPECT_NEAR(LearningRate(LrSchedule::kCosine, 1.0f, 0.1f, 10, 110, 110), 0.1f, 1e-6);
}

}  // namespace
}  // namespace r1::train
