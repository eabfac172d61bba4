// report.html: one self-contained page — inline CSS and SVG, no scripts, no network.
#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "recipe/report.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

constexpr const char* kColors[] = {"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"};

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

// A tick label with as many decimals as the tick spacing needs.
std::string Fmt(double v, double spacing) {
  const double a = std::fabs(v);
  if (a >= 1e6 || (a != 0 && a < 1e-4)) return StrFormat("%.3g", v);
  const int decimals = spacing > 0 ? std::clamp(static_cast<int>(std::ceil(-std::log10(spacing))), 0, 6) : 0;
  return StrFormat("%.*f", decimals, v);
}

// A line chart of one or more series; empty series are skipped.
std::string LineChart(const std::string& title, const std::vector<Series>& series, const std::string& xlabel) {
  const double W = 440, H = 240, L = 52, R = 12, T = 28, B = 36;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  std::string svg = StrFormat("<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
  svg += StrFormat("<text x=\"%.0f\" y=\"18\" class=\"t\">%s</text>", L, HtmlEscape(title).c_str());
  if (!std::isfinite(x0)) return svg + "<text x=\"60\" y=\"120\">no data</text></svg>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-12) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  svg += StrFormat("<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"f\"/>", L, T, W - L - R, H - T - B);
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    svg += StrFormat("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>", L, W - R, py(y), py(y));
    svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%s</text>", L - 4, py(y) + 4, Fmt(y, (y1 - y0) / 4).c_str());
    svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">%s</text>", px(x), H - B + 14,
                     Fmt(x, (x1 - x0) / 4).c_str());
  }
  svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">%s</text>", L + (W - L - R) / 2, H - 4,
                   HtmlEscape(xlabel).c_str());
  double legend_x = W - R - 4;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    if (s.points.empty()) continue;
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    std::string pts;
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) pts += StrFormat("%.1f,%.1f ", px(x), py(y));
    svg += StrFormat("<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"/>", pts.c_str(), color);
    if (series.size() > 1) {
      svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\" style=\"fill:%s\">%s</text>", legend_x,
                       T + 14.0 + 13.0 * static_cast<double>(k), color, HtmlEscape(s.name).c_str());
    }
  }
  return svg + "</svg>";
}

// Grouped bars in [0, 1]: one group per model, one bar per metric.
std::string BarChart(const std::string& title, const std::vector<std::string>& groups,
                     const std::vector<std::string>& metrics, const std::vector<std::vector<double>>& values) {
  const double W = 900, H = 280, L = 44, R = 12, T = 30, B = 44;
  std::string svg = StrFormat("<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\">", W, H, W, H);
  svg += StrFormat("<text x=\"%.0f\" y=\"18\" class=\"t\">%s</text>", L, HtmlEscape(title).c_str());
  auto py = [&](double y) { return H - B - y * (H - T - B); };
  for (int i = 0; i <= 4; ++i) {
    svg += StrFormat("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>", L, W - R, py(i / 4.0), py(i / 4.0));
    svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%d%%</text>", L - 4, py(i / 4.0) + 4, 25 * i);
  }
  const double gw = (W - L - R) / static_cast<double>(std::max<size_t>(1, groups.size()));
  const double bw = gw * 0.8 / static_cast<double>(std::max<size_t>(1, metrics.size()));
  for (size_t g = 0; g < groups.size(); ++g) {
    const double gx = L + gw * static_cast<double>(g) + gw * 0.1;
    for (size_t m = 0; m < metrics.size(); ++m) {
      const double v = std::clamp(values[g][m], 0.0, 1.0);
      svg += StrFormat("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.1f%%</title></rect>",
                       gx + bw * static_cast<double>(m), py(v), bw - 2, py(0) - py(v), kColors[m % 6],
                       HtmlEscape(groups[g]).c_str(), HtmlEscape(metrics[m]).c_str(), 100 * v);
      svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">%.0f</text>",
                       gx + bw * (static_cast<double>(m) + 0.5), py(v) - 3, 100 * v);
    }
    svg += StrFormat("<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">%s</text>", gx + gw * 0.4, H - B + 16,
                     HtmlEscape(groups[g]).c_str());
  }
  for (size_t m = 0; m < metrics.size(); ++m)
    svg += StrFormat("<text x=\"%.1f\" y=\"18\" class=\"a\" style=\"fill:%s\">&#9632; %s</text>", W - R - 330 + 110.0 * static_cast<double>(m),
                     kColors[m % 6], HtmlEscape(metrics[m]).c_str());
  return svg + "</svg>";
}

Series MetricSeries(const std::string& name, const std::vector<json>& rows, const char* key) {
  Series s{name, {}};
  for (const json& r : rows)
    if (r.contains(key) && r[key].is_number() && r.contains("step"))
      s.points.push_back({r["step"].get<double>(), r[key].get<double>()});
  return s;
}

}  // namespace

std::string HtmlEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string RenderReportHtml(const json& rep, const std::string& out) {
  const std::string title = "r1 run — " + rep["recipe"].get<std::string>();
  std::string h = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + HtmlEscape(title) + "</title><style>"
                  "body{font:14px system-ui,sans-serif;margin:24px;max-width:960px;color:#111}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
                  "th:first-child,td:first-child{text-align:left}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}"
                  "svg{margin:4px}.t{font-weight:600;font-size:13px}.a{font-size:11px;fill:#444}.g{stroke:#e5e5e5}"
                  ".f{fill:none;stroke:#bbb}.ok{color:#16a34a}.bad{color:#dc2626}"
                  "</style></head><body>";
  h += "<h1>" + HtmlEscape(title) + "</h1>";
  h += "<p>Task <code>" + HtmlEscape(rep["task"].get<std::string>()) + "</code> (<code>" +
       HtmlEscape(rep["task_args"].get<std::string>()) + "</code>), " +
       StrFormat("%lld held-out problems &times; %lld samples; whole run %.1f s.</p>",
                 static_cast<long long>(rep["heldout_problems"].get<int64_t>()),
                 static_cast<long long>(rep["samples_per_problem"].get<int64_t>()), rep["wall_seconds"].get<double>());
  // ---- accuracy per stage
  std::vector<std::string> groups;
  std::vector<std::vector<double>> values;
  h += "<h2>Accuracy per stage</h2><table><tr><th>model</th><th>pass@1</th><th>majority</th><th>format</th>"
       "<th>mean length</th><th>active params</th><th>train s</th></tr>";
  for (const ReportModel& m : ReportModels()) {
    const json& s = rep["stages"][m.key];
    groups.push_back(m.label);
    values.push_back({s["pass1"].get<double>(), s["majority"].get<double>(), s["format_rate"].get<double>()});
    h += StrFormat("<tr><td>%s</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f</td><td>%lld</td><td>%.1f</td></tr>",
                   HtmlEscape(m.label).c_str(), 100 * s["pass1"].get<double>(), 100 * s["majority"].get<double>(),
                   100 * s["format_rate"].get<double>(), s["mean_length"].get<double>(),
                   static_cast<long long>(s["active_params"].get<int64_t>()), s["seconds"].get<double>());
  }
  h += "</table>";
  h += BarChart("Held-out accuracy per stage", groups, {"pass@1", "majority", "format"}, values);
  const json& f = rep["findings"];
  auto verdict = [](bool ok) { return std::string(ok ? "<span class=\"ok\">yes</span>" : "<span class=\"bad\">no</span>"); };
  h += "<h2>Findings</h2><ul>";
  h += StrFormat("<li>GRPO vs SFT: %+.1f points of pass@1 (target &ge; +15: ", 100 * f["grpo_minus_sft"].get<double>()) +
       verdict(f["grpo_minus_sft"].get<double>() >= 0.15) + ")</li>";
  h += StrFormat("<li>Student keeps %.0f%% of the GRPO model's pass@1 with %.0f%% of its activated parameters (target &ge; 80%%: ",
                 100 * f["student_retention"].get<double>(), 100 * f["student_active_fraction"].get<double>()) +
       verdict(f["student_retention"].get<double>() >= 0.8) + ")</li>";
  h += "<li>Distillation beats GRPO on the student for the same wall-clock: " + verdict(f["distill_beats_rl"].get<bool>()) +
       "</li></ul>";
  // ---- training curves
  h += "<h2>Training loss per stage</h2>";
  const std::pair<const char*, const char*> losses[] = {
      {"pretrain", "teacher pretraining"}, {"sft", "cold-start SFT"}, {"student-base", "student pretraining"},
      {"distill", "distillation"}};
  for (const auto& [file, name] : losses) {
    const std::vector<json> rows = ReadMetrics(out + "/metrics/" + file + ".jsonl");
    std::vector<Series> s = {MetricSeries("loss", rows, "loss")};
    if (std::string(file) == "distill") {
      Series kl = MetricSeries("KL to teacher", rows, "kl");
      bool any = false;
      for (const auto& pt : kl.points) any |= pt.second != 0.0;
      if (any) s.push_back(std::move(kl));  // only with logit distillation on
    }
    h += LineChart(std::string(name) + " — loss", s, "step");
  }
  h += "<h2>GRPO</h2>";
  const std::vector<json> grpo = ReadMetrics(out + "/metrics/grpo.jsonl");
  const std::vector<json> sgrpo = ReadMetrics(out + "/metrics/student-grpo.jsonl");
  const std::pair<const char*, const char*> curves[] = {{"reward_mean", "reward"},
                                                        {"accuracy", "training accuracy"},
                                                        {"completion_length_mean", "completion length (tokens)"},
                                                        {"kl", "KL to reference"}};
  for (const auto& [key, name] : curves)
    h += LineChart(name, {MetricSeries("teacher", grpo, key), MetricSeries("student (GRPO only)", sgrpo, key)}, "step");
  // ---- traces
  h += "<h2>Sample reasoning</h2>";
  for (const ReportModel& m : ReportModels()) {
    h += "<h3>" + HtmlEscape(m.label) + "</h3>";
    for (const json& e : rep["stages"][m.key]["examples"]) {
      const bool ok = e["correct"].get<bool>();
      h += "<details" + std::string(ok ? " open" : "") + "><summary>" + HtmlEscape(e["prompt"].get<std::string>()) +
           " — expected " + HtmlEscape(e["expected"].get<std::string>()) + ", " +
           (ok ? "<span class=\"ok\">correct</span>" : "<span class=\"bad\">wrong</span>") + "</summary><pre>" +
           HtmlEscape(e["completion"].get<std::string>()) + "</pre></details>";
    }
  }
  h += "<p>Figures: report.json beside this page.</p></body></html>\n";
  return h;
}

}  // namespace r1::recipe
