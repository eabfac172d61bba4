// Recipe parsing: the built-in recipe equals recipes/default.json and parses, and every kind of
// mistake (unknown key, missing section, wrong type, bad value, inconsistent models, unknown
// stage) is an error naming the key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "recipe/recipe.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

json Default() { return json::parse(DefaultRecipeText()); }

// The error message of parsing `j`, "" when it parses.
std::string Error(const json& j) {
  auto r = ParseRecipe(j.dump(), "r.json");
  return r.ok() ? "" : r.status().message();
}

TEST(RecipeTest, BuiltInEqualsCommittedFileAndParses) {
  auto file = ReadFileToString(std::string(R1_SOURCE_DIR) + "/recipes/default.json");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*file, DefaultRecipeText());
  auto r = ParseRecipe(DefaultRecipeText(), "built-in");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->task.name, "arithmetic");
  EXPECT_EQ(r->tokenizer.vocab_size, 384);
  EXPECT_GT(r->teacher.n_routed_experts, 0);
  EXPECT_EQ(r->student.n_routed_experts, 0);
  EXPECT_LE(2 * ComputeStats(r->student).active_params, ComputeStats(r->teacher).active_params);
  EXPECT_EQ(r->pretrain.steps, 800);
  EXPECT_DOUBLE_EQ(r->pretrain.init_std, 0.08);
  EXPECT_EQ(r->pretrain.schedule, "cosine");
  EXPECT_FLOAT_EQ(r->eval.temperature, 0.6f);
}

TEST(RecipeTest, MicroRecipeParses) {
  auto r = LoadRecipe(std::string(R1_SOURCE_DIR) + "/recipes/micro.json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST(RecipeTest, UnknownKeysAreNamed) {
  json j = Default();
  j["colour"] = 1;
  EXPECT_EQ(Error(j), "r.json: colour: unknown key");
  j = Default();
  j["grpo"]["learning_rate"] = 1e-4;
  EXPECT_EQ(Error(j), "r.json: grpo.learning_rate: unknown key");
  j = Default();
  j["distill"]["train"]["stepz"] = 3;
  EXPECT_EQ(Error(j), "r.json: distill.train.stepz: unknown key");
}

TEST(RecipeTest, WrongTypesAreNamed) {
  json j = Default();
  j["grpo"]["lr"] = "1e-4";
  EXPECT_EQ(Error(j), "r.json: grpo.lr: expected a number, got a string");
  j = Default();
  j["pretrain"]["steps"] = 2.5;
  EXPECT_EQ(Error(j), "r.json: pretrain.steps: expected an integer, got a number");
  j = Default();
  j["student_grpo"]["match_distill_time"] = 1;
  EXPECT_EQ(Error(j), "r.json: student_grpo.match_distill_time: expected true or false, got an integer");
  j = Default();
  j["eval"] = 3;
  EXPECT_EQ(Error(j), "r.json: eval: expected an object, got an integer");
  j = Default();
  j["tokenizer"]["digits"] = "pairs";
  EXPECT_NE(Error(j).find("tokenizer.digits: \"pairs\" is not one of single, group3"), std::string::npos) << Error(j);
  EXPECT_NE(Error(json::array()).find("expected a JSON object"), std::string::npos);
  auto bad = ParseRecipe("{\"name\": ", "r.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "r.json: not valid JSON");
}

TEST(RecipeTest, MissingSectionsAndBadValuesAreNamed) {
  json j = Default();
  j.erase("sft");
  EXPECT_EQ(Error(j), "r.json: sft: missing");
  j = Default();
  j["grpo"]["group"] = 1;
  EXPECT_EQ(Error(j), "r.json: grpo.group: must be >= 2, got 1");
  j = Default();
  j["task"]["name"] = "chess";
  EXPECT_NE(Error(j).find("r.json: task.name"), std::string::npos) << Error(j);
  j = Default();
  j["task"]["args"] = "digits=2,colour=red";
  EXPECT_NE(Error(j).find("colour"), std::string::npos) << Error(j);
  j = Default();
  j["pretrain"]["min_lr"] = 1.0;
  EXPECT_EQ(Error(j), "r.json: pretrain.min_lr: must be <= lr");
}

TEST(RecipeTest, ModelConsistencyIsChecked) {
  json j = Default();
  j["student"] = j["teacher"];
  EXPECT_NE(Error(j).find("student: the student must be dense"), std::string::npos) << Error(j);
  j = Default();
  j["student"]["hidden_size"] = 512;
  j["student"]["intermediate_size"] = 2048;
  EXPECT_NE(Error(j).find("more than half the teacher's"), std::string::npos) << Error(j);
  j = Default();
  j["teacher"]["vocab_size"] = 500;
  EXPECT_NE(Error(j).find("teacher.vocab_size: 500 differs from tokenizer.vocab_size 384"), std::string::npos) << Error(j);
  j = Default();
  j["sft"]["seq"] = 1024;
  EXPECT_NE(Error(j).find("sft.seq: 1024 exceeds max_position_embeddings 256"), std::string::npos) << Error(j);
  j = Default();
  j["teacher"]["hidden_size"] = "big";
  EXPECT_NE(Error(j).find("teacher"), std::string::npos) << Error(j);
}

TEST(RecipeTest, Stages) {
  EXPECT_EQ(StageNames().front(), "data");
  EXPECT_EQ(StageNames().back(), "report");
  auto i = StageIndex("grpo");
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(StageNames()[static_cast<size_t>(*i)], "grpo");
  auto bad = StageIndex("rlhf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown stage \"rlhf\""), std::string::npos);
  EXPECT_NE(bad.status().message().find("student-grpo"), std::string::npos);
}

}  // namespace
}  // namespace r1::recipe
