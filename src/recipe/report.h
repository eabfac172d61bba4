// The report of a run: report.json (every figure; an interface scripts read), report.md and a
// self-contained report.html (inline SVG charts, no network).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/status.h"

namespace r1::recipe {

// One model evaluated by the eval stage: key in report.json, its checkpoint directory name.
struct ReportModel {
  const char* key;    // "base", "sft", "grpo", "student", "student_grpo"
  const char* dir;    // "base", "sft", "grpo", "student", "student-grpo"
  const char* stage;  // the stage that trained it
  const char* label;  // for tables and charts
};
const std::vector<ReportModel>& ReportModels();

// One JSON object per line of a metrics file (missing file: empty).
std::vector<nlohmann::json> ReadMetrics(const std::string& path);

// report.html from report.json's content and the run's metrics files under `out`.
std::string RenderReportHtml(const nlohmann::json& report, const std::string& out);

// Escapes &, <, >, " for HTML text and attributes.
std::string HtmlEscape(const std::string& s);

}  // namespace r1::recipe
