// r1 tokenize, r1 tokenizer train — filled in by the tokenizer work.
#include "cli/command.h"

namespace r1::cli {
void RegisterTokenizerCommands(CLI::App&) {}
}  // namespace r1::cli
