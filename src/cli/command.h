// The `r1` command line: every subcommand registers itself on the CLI11 app through a
// Register*Commands function and runs as a function returning Status.
//
// Conventions for every command: `--help`; `--threads N` (default: all cores); `--json` puts
// machine-readable output on stdout while logs and progress go to stderr; exit 0 ok, 1 runtime
// error, 2 usage error, with one clear line on stderr naming what was wrong.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "core/status.h"

namespace r1::cli {

// Options every command has.
struct CommonOptions {
  int threads = 0;  // 0 = all cores
  bool json = false;
};

// Adds a subcommand whose body is `run`; `--threads` and `--json` are added for it. The body runs
// after parsing, with threads already set. Returns the subcommand to add its own options to.
CLI::App* AddCommand(CLI::App& app, const std::string& name, const std::string& description,
                     CommonOptions* common, std::function<Status()> run);

// Each area of the CLI registers its commands here (one file each).
void RegisterModelCommands(CLI::App& app);      // info, perplexity, generate, bench, new-model
void RegisterTokenizerCommands(CLI::App& app);  // tokenize, chat-template, tokenizer train
void RegisterTrainCommands(CLI::App& app);      // pretrain, sft
void RegisterRlCommands(CLI::App& app);         // grpo, eval
void RegisterServeCommands(CLI::App& app);      // serve
void RegisterChatCommands(CLI::App& app);       // chat
void RegisterTaskCommands(CLI::App& app);       // task
void RegisterRunCommands(CLI::App& app);        // run

}  // namespace r1::cli
