// End-to-end tests of the tokenizer commands through the r1 binary: tokenize / decode (text and
// JSONL), chat-template, error exits, and `r1 tokenizer train` — deterministic output that our
// loader reads and, when node and the npm packages are installed, that the JavaScript reference
// loads and encodes to the same ids.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/file.h"
#include "tests/tokenizer/test_data.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

struct CmdResult {
  int code;
  std::string out;
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r{-1, ""};
  std::FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string TempDir() {
  char tmpl[] = "/tmp/r1_tok_cli_XXXXXX";
  return ::mkdtemp(tmpl);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

const std::string kR1 = R1_BINARY;

TEST(TokenizeCli, TextJsonlAndDecode) {
  if (!testing::HaveFamily("deepseek_v3")) GTEST_SKIP() << "tests/js/node_modules missing";
  const std::string tok = testing::FamilyDir("deepseek_v3");
  CmdResult r = Sh(kR1 + " tokenize --tokenizer " + tok + " --text 'Hello, world!'");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "[0,19923,14,2058,3]\n");
  r = Sh(kR1 + " tokenize --tokenizer " + tok +
         "/tokenizer.json --no-special --text 'Hello, world!'");
  EXPECT_EQ(r.out, "[19923,14,2058,3]\n");
  const std::string dir = TempDir();
  WriteFile(dir + "/in.jsonl", "\"1234567\"\n\"<｜User｜>Hi<｜Assistant｜>\"\n\"\"\n");
  r = Sh(kR1 + " tokenize --tokenizer " + tok + " --no-special --threads 2 --jsonl " + dir +
         "/in.jsonl");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "[6895,18009,25]\n[128803,23166,128804]\n[]\n");
  WriteFile(dir + "/ids.jsonl", r.out);
  r = Sh(kR1 + " tokenize --tokenizer " + tok + " --decode --jsonl " + dir + "/ids.jsonl");
  EXPECT_EQ(r.out, "\"1234567\"\n\"<｜User｜>Hi<｜Assistant｜>\"\n\"\"\n");
  r = Sh(kR1 + " tokenize --tokenizer " + tok + " --decode --skip-special --text '[0,19923,1]'");
  EXPECT_EQ(r.out, "\"Hello\"\n");
}

TEST(TokenizeCli, ErrorsExitCleanly) {
  EXPECT_EQ(Sh(kR1 + " tokenize --tokenizer /nonexistent --text x").code, 1);
  if (!testing::HaveFamily("deepseek_v3")) return;
  const std::string tok = testing::FamilyDir("deepseek_v3");
  EXPECT_EQ(Sh(kR1 + " tokenize --tokenizer " + tok).code, 2);  // neither --text nor --jsonl
  const std::string dir = TempDir();
  WriteFile(dir + "/bad.jsonl", "\"ok\"\nnot json\n");
  EXPECT_EQ(Sh(kR1 + " tokenize --tokenizer " + tok + " --jsonl " + dir + "/bad.jsonl").code, 1);
}

TEST(ChatTemplateCli, RendersR1Prompt) {
  if (!testing::HaveFamily("deepseek_v3")) GTEST_SKIP() << "tests/js/node_modules missing";
  const std::string dir = TempDir();
  WriteFile(dir + "/m.json", R"([{"role":"user","content":"What is 1+1?"}])");
  CmdResult r = Sh(kR1 + " chat-template --tokenizer " + testing::FamilyDir("deepseek_v3") +
                   " --add-generation-prompt --messages " + dir + "/m.json");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n\n");
  r = Sh(kR1 + " chat-template --json --tokenizer " + testing::FamilyDir("deepseek_v3") +
         " --add-generation-prompt --messages " + dir + "/m.json");
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"].back().get<int>(), 201);  // "\n" after <think> = 128798
  EXPECT_EQ(j["ids"][j["ids"].size() - 2].get<int>(), 128798);
}

TEST(TrainCli, DeterministicLoadableAndAgreesWithReference) {
  const std::string dir = TempDir();
  std::string text;
  for (const std::string& s : testing::ReadCorpus()) text += s + "\n";
  WriteFile(dir + "/corpus.txt", text);
  const std::string train =
      kR1 + " tokenizer train --corpus " + dir + "/corpus.txt --vocab-size 1200 --out ";
  ASSERT_EQ(Sh(train + dir + "/a").code, 0);
  ASSERT_EQ(Sh(train + dir + "/b --digits group3").code, 0);
  for (const char* f : {"/tokenizer.json", "/tokenizer_config.json"}) {
    EXPECT_EQ(*ReadFileToString(dir + "/a" + f), *ReadFileToString(dir + "/b" + f)) << f;
  }
  auto t = Tokenizer::Load(dir + "/a");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->vocab_size(), 1200);
  EXPECT_EQ((*t)->bos_id(), 0);
  EXPECT_GE((*t)->TokenToId("<think>"), 0);
  for (const std::string& s : testing::ReadCorpus()) {
    ASSERT_EQ((*t)->Decode((*t)->Encode(s, false)), s);
  }
  ASSERT_EQ(Sh(kR1 + " tokenizer train --corpus " + dir +
               "/corpus.txt --vocab-size 1200 --digits single --out " + dir + "/c")
                .code,
            0);
  auto single = Tokenizer::Load(dir + "/c");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)->Encode("2025", false).size(), 4u);
  // The JavaScript reference encodes the corpus with our file to the very same ids.
  const std::string js = std::string(R1_SOURCE_DIR) + "/tests/js/encode_jsonl.mjs";
  if (Sh("node --version").code != 0 || !testing::HaveFamily("deepseek_v3")) {
    GTEST_SKIP() << "node or tests/js/node_modules missing: reference comparison skipped";
  }
  const std::string corpus = testing::DataPath("corpus.jsonl");
  const CmdResult ref = Sh("node " + js + " " + dir + "/a " + corpus);
  const CmdResult ours =
      Sh(kR1 + " tokenize --no-special --tokenizer " + dir + "/a --jsonl " + corpus);
  ASSERT_EQ(ref.code, 0);
  ASSERT_EQ(ours.code, 0);
  EXPECT_TRUE(ref.out == ours.out) << "trained tokenizer: ids differ from the JavaScript reference";
}

}  // namespace
}  // namespace r1::tok
