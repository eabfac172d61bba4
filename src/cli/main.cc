// r1: one binary, one subcommand per stage of the R1 system.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "core/log.h"
#include "core/threads.h"
#include "kernels/runtime.h"

namespace r1::cli {
namespace {
// The body of the subcommand that was selected; set from its parse callback.
std::function<Status()>* g_selected = nullptr;
}  // namespace

CLI::App* AddCommand(CLI::App& app, const std::string& name, const std::string& description,
                     CommonOptions* common, std::function<Status()> run) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->add_option("--threads", common->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  sub->add_flag("--json", common->json, "Machine-readable output on stdout");
  auto body = std::make_shared<std::function<Status()>>(
      [common, run = std::move(run)]() -> Status {
        SetNumThreads(common->threads);
        return run();
      });
  sub->parse_complete_callback([body]() { g_selected = body.get(); });
  // Keep the body alive as long as the app.
  sub->callback([body]() {});
  return sub;
}

}  // namespace r1::cli

int main(int argc, char** argv) {
  using namespace r1;
  // libgomp's idle spin and the OpenBLAS kernels are chosen here, by starting once more with the
  // environment set (kernels/runtime.h); `r1 bench` prints the OpenBLAS core in use.
  kernels::RestartWithRuntimeSettings(argv);
  CLI::App app{"r1 — DeepSeek-R1 end to end: model, training recipe and deployment"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "r1 0.1.0");
  cli::RegisterModelCommands(app);
  cli::RegisterTokenizerCommands(app);
  cli::RegisterServeCommands(app);
  cli::RegisterChatCommands(app);
  cli::RegisterTrainCommands(app);
  cli::RegisterRlCommands(app);
  cli::RegisterRunCommands(app);
  cli::RegisterTaskCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "r1: usage error: %s (see --help)\n", e.what());
    return 2;
  }
  if (cli::g_selected == nullptr) {
    std::fprintf(stderr, "r1: usage error: no command given (see --help)\n");
    return 2;
  }
  Status st;
  try {
    st = (*cli::g_selected)();
  } catch (const std::bad_alloc&) {
    st = Status(StatusCode::kInternal, "out of memory");
  } catch (const std::exception& e) {
    st = Status(StatusCode::kInternal, e.what());
  }
  if (!st.ok()) {
    std::fprintf(stderr, "r1: %s\n", st.ToString().c_str());
    return st.code() == StatusCode::kUsage ? 2 : 1;
  }
  return 0;
}
