#include "cli/command.h"

namespace r1::cli {
void RegisterModelCommands(CLI::App&) {}
}  // namespace r1::cli
