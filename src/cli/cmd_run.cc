// r1 run — the whole R1 recipe in one command (src/recipe/pipeline.h, docs/recipe.md).
#include <cstdio>

#include "cli/command.h"
#include "core/memory.h"
#include "recipe/pipeline.h"
#include "recipe/recipe.h"

namespace r1::cli {
namespace {

struct RunArgs {
  recipe::RunOptions o;
  bool print_recipe = false;
};

Status RunRunCmd(const RunArgs& a, const CommonOptions& common) {
  if (a.print_recipe) {
    if (a.o.recipe_path.empty()) {
      std::fputs(recipe::DefaultRecipeText().c_str(), stdout);
      return Status::Ok();
    }
    R1_ASSIGN_OR_RETURN(recipe::Recipe r, recipe::LoadRecipe(a.o.recipe_path));
    std::printf("recipe %s is valid\n", a.o.recipe_path.c_str());
    return Status::Ok();
  }
  R1_ASSIGN_OR_RETURN(nlohmann::json report, recipe::RunRecipe(a.o));
  if (common.json) std::printf("%s\n", report.dump(2).c_str());
  return Status::Ok();
}

}  // namespace

void RegisterRunCommands(CLI::App& app) {
  static CommonOptions common;
  static RunArgs a;
  std::string stages;
  for (const auto& s : recipe::StageNames()) stages += (stages.empty() ? "" : ", ") + s;
  auto* cmd = AddCommand(app, "run",
                         "The whole R1 recipe: tokenizer, pretrain, cold-start SFT, GRPO, rejection sampling, "
                         "distillation, eval and report",
                         &common, [] { KeepFreedMemoryForReuse(); return RunRunCmd(a, common); });
  cmd->add_option("--out", a.o.out, "Output directory (default runs/default)");
  cmd->add_option("--recipe", a.o.recipe_path, "Recipe JSON file (default: the built-in recipe, recipes/default.json)");
  cmd->add_option("--from", a.o.from, "Rerun from this stage on: " + stages);
  cmd->add_flag("--print-recipe", a.print_recipe, "Print the built-in recipe (or check --recipe FILE) and exit");
}

}  // namespace r1::cli
