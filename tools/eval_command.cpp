// momentkv eval: fidelity of KV policies against the same model with a full cache, over a prompt
// set and a sweep of policies x budgets x alphas x scopes. Writes DIR/results.json, results.csv,
// results.md and plots (fidelity vs budget, KL vs position) as SVG. Deterministic (greedy).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/eval/eval_report.h"
#include "core/eval/evaluator.h"
#include "core/eval/svg_chart.h"
#include "tools/commands.h"
#include "tools/model_options.h"

namespace momentkv::tools {

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The value of the "prompt" string field of a JSON object line (escapes decoded), or nullopt.
std::optional<std::string> json_prompt_field(const std::string& line) {
  const auto key = line.find("\"prompt\"");
  if (key == std::string::npos) return std::nullopt;
  auto i = line.find(':', key);
  if (i == std::string::npos) return std::nullopt;
  i = line.find('"', i);
  if (i == std::string::npos) return std::nullopt;
  std::string out;
  for (++i; i < line.size() && line[i] != '"'; ++i) {
    char c = line[i];
    if (c == '\\' && i + 1 < line.size()) {
      const char e = line[++i];
      switch (e) {
        case 'n':
          c = '\n';
          break;
        case 't':
          c = '\t';
          break;
        case 'r':
          c = '\r';
          break;
        case 'u': {
          if (i + 4 >= line.size()) return std::nullopt;
          const unsigned cp = static_cast<unsigned>(std::stoul(line.substr(i + 1, 4), nullptr, 16));
          i += 4;
          if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          } else {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
          }
          continue;
        }
        default:
          c = e;
          break;
      }
    }
    out.push_back(c);
  }
  return out;
}

// Prompts from a file: JSONL objects with a "prompt" field, or one plain prompt per line.
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read prompt file '" + path + "'");
  std::vector<std::string> prompts;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (line[line.find_first_not_of(" \t")] == '{') {
      auto p = json_prompt_field(line);
      if (!p) throw UsageError(path + ":" + std::to_string(line_no) + ": no \"prompt\" field");
      prompts.push_back(*p);
    } else {
      prompts.push_back(line);
    }
  }
  if (prompts.empty()) throw UsageError("no prompts in '" + path + "'");
  return prompts;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw Error("cannot write " + p.string());
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  ArgParser p("eval",
              "Fidelity of KV policies vs a full cache: teacher-forced KL / top-1 / ΔNLL, "
              "free-running divergence, retained attention, speed.");
  ModelOptions mo;
  mo.add_to(p);
  std::string prompts_path, out_dir = "eval-out";
  int32_t n_gen = 400, limit = 0, bucket = 64;
  std::vector<std::string> policies = {"full", "moment", "h2o", "tova", "streaming", "scope"};
  std::vector<int32_t> budgets = {32, 64, 128};
  std::vector<float> alphas = {0.9f};
  std::vector<std::string> scopes = {"decode"};
  std::vector<std::string> variants = {"paper"};
  KvType kv_type = KvType::kF32;
  p.add({"-f", "--prompts"}, "FILE", "prompt set: JSONL with a \"prompt\" field, or one per line",
        [&](const std::string& v) { prompts_path = v; });
  p.add({"-n", "--n-gen"}, "N", "tokens generated per prompt (default 400)",
        [&](const std::string& v) {
          n_gen = static_cast<int32_t>(ArgParser::to_int("-n", v, 1, 1 << 20));
        });
  p.add({"--policies"}, "LIST", "comma-separated (default full,moment,h2o,tova,streaming,scope)",
        [&](const std::string& v) { policies = split(v); });
  p.add({"--budgets"}, "LIST", "decode budgets (default 32,64,128)", [&](const std::string& v) {
    budgets.clear();
    for (const auto& b : split(v))
      budgets.push_back(static_cast<int32_t>(ArgParser::to_int("--budgets", b, 1, 1 << 24)));
  });
  p.add({"--alphas"}, "LIST", "moment alphas (default 0.9)", [&](const std::string& v) {
    alphas.clear();
    for (const auto& a : split(v))
      alphas.push_back(static_cast<float>(ArgParser::to_double("--alphas", a)));
  });
  p.add({"--scope"}, "LIST", "decode,unified (default decode)",
        [&](const std::string& v) { scopes = split(v); });
  p.add({"--moment-variants"}, "LIST",
        "moment options: paper, graceN (e.g. grace16), normalize, kv_head, or combinations "
        "joined with '+' (default paper)",
        [&](const std::string& v) { variants = split(v); });
  p.add({"--prompts-limit"}, "K", "use the first K prompts", [&](const std::string& v) {
    limit = static_cast<int32_t>(ArgParser::to_int("--prompts-limit", v, 1, 1 << 20));
  });
  p.add({"--bucket"}, "N", "positions per bucket of the by-position curves (default 64)",
        [&](const std::string& v) {
          bucket = static_cast<int32_t>(ArgParser::to_int("--bucket", v, 1, 1 << 20));
        });
  p.add({"--kv-type"}, "TYPE", "KV element type for every run, reference included (default f32)",
        [&](const std::string& v) {
          auto t = parse_kv_type(v);
          if (!t) throw UsageError("--kv-type expects f16, f32 or q8_0, got '" + v + "'");
          kv_type = *t;
        });
  p.add({"--out"}, "DIR", "output directory (default eval-out)",
        [&](const std::string& v) { out_dir = v; });
  if (!p.parse(argc, argv)) return 0;
  if (prompts_path.empty()) throw UsageError("give the prompt set with -f FILE");
  auto prompts = read_prompts(prompts_path);
  if (limit > 0 && static_cast<int32_t>(prompts.size()) > limit)
    prompts.resize(static_cast<size_t>(limit));

  // The sweep: every policy x scope x budget; moment also x alpha x variant. `full` runs once
  // per budget in decode scope (scope does not apply to it).
  std::vector<KvConfig> configs;
  for (const auto& policy : policies) {
    for (const auto& scope : scopes) {
      if (policy == "full" && scope != scopes.front()) continue;
      for (int32_t b : budgets) {
        KvConfig base;
        base.policy = policy;
        base.scope = scope == "unified" ? KvScope::kUnified : KvScope::kDecode;
        if (scope != "decode" && scope != "unified")
          throw UsageError("unknown scope '" + scope + "'");
        base.decode_budget = policy == "full" ? n_gen : b;
        base.type = kv_type;
        if (policy != "moment") {
          if (auto err = base.validate()) throw UsageError(*err);
          configs.push_back(base);
          if (policy == "full") break;  // one full-cache row is enough
          continue;
        }
        for (float a : alphas) {
          for (const auto& variant : variants) {
            KvConfig c = base;
            c.alpha = a;
            std::stringstream vs(variant);
            std::string opt;
            while (std::getline(vs, opt, '+')) {
              if (opt == "paper") continue;
              if (opt == "normalize")
                c.normalize = true;
              else if (opt == "kv_head")
                c.granularity = Granularity::kKvHead;
              else if (opt.rfind("grace", 0) == 0)
                c.grace = static_cast<int32_t>(
                    ArgParser::to_int("--moment-variants", opt.substr(5), 1, 1 << 20));
              else
                throw UsageError("unknown moment variant '" + opt + "'");
            }
            if (auto err = c.validate()) throw UsageError(*err);
            configs.push_back(c);
          }
        }
      }
    }
  }

  auto model = Model::load(mo.resolved_model_path());
  auto tok = Tokenizer::create(model->file());
  kernels::CpuBackend backend(mo.threads);
  eval::EvalOptions eo;
  eo.n_gen = n_gen;
  eo.bucket = bucket;
  eo.engine = mo.engine_options();
  eo.kv_type = kv_type;
  eval::Evaluator evaluator(*model, *tok, backend, eo);

  std::string cmdline = "momentkv eval";
  for (int i = 0; i < argc; ++i) cmdline.append(" ").append(argv[i]);
  std::fprintf(stderr, "eval: %zu prompts x %zu configurations, %d tokens each, %d threads\n",
               prompts.size(), configs.size(), n_gen, backend.n_threads());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<eval::PromptResult>> results(configs.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto ref = evaluator.reference(prompts[i]);
    for (size_t c = 0; c < configs.size(); ++c)
      results[c].push_back(evaluator.evaluate(ref, configs[c]));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(
        stderr,
        "eval: prompt %zu/%zu (%zu prompt + %zu generated tokens), %.1f s elapsed, ~%.0f s left\n",
        i + 1, prompts.size(), ref.prompt.size(), ref.tokens.size(), s,
        s / static_cast<double>(i + 1) * static_cast<double>(prompts.size() - i - 1));
  }
  std::vector<eval::ConfigRecord> records;
  for (size_t c = 0; c < configs.size(); ++c)
    records.push_back(eval::aggregate(configs[c], results[c], bucket));

  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  write_file(fs::path(out_dir) / "results.json", eval::to_json(records));
  write_file(fs::path(out_dir) / "results.csv", eval::to_csv(records));
  write_file(fs::path(out_dir) / "results.md",
             "Command: `" + cmdline + "`\n\nModel: `" + mo.resolved_model_path() + "`, " +
                 std::to_string(prompts.size()) + " prompts, " + std::to_string(n_gen) +
                 " generated tokens each, KV " + kv_type_name(kv_type) + ".\n\n" +
                 eval::to_markdown(records));

  // Plot 1: teacher-forced top-1 agreement vs decode budget, one line per configuration family.
  for (const char* metric : {"tf_top1_agreement", "tf_kl_mean"}) {
    eval::ChartSpec spec;
    const bool top1 = std::string(metric) == "tf_top1_agreement";
    spec.title = top1 ? "Teacher-forced top-1 agreement with the full cache"
                      : "Teacher-forced KL(full || compressed), mean per token";
    spec.x_label = "decode budget (tokens)";
    spec.y_label = top1 ? "top-1 agreement" : "KL (nats)";
    spec.log_x = true;
    std::vector<std::string> families;
    for (const auto& r : records) {
      if (r.policy == "full") continue;
      std::string fam = r.label.substr(0, r.label.rfind(" B="));
      if (std::find(families.begin(), families.end(), fam) == families.end())
        families.push_back(fam);
    }
    for (const auto& fam : families) {
      eval::ChartSeries s;
      s.name = fam;
      for (const auto& r : records) {
        if (r.policy != "full" && r.label.substr(0, r.label.rfind(" B=")) == fam) {
          s.x.push_back(r.decode_budget);
          s.y.push_back(top1 ? r.tf_top1_agreement : r.tf_kl_mean);
        }
      }
      spec.series.push_back(std::move(s));
    }
    write_file(fs::path(out_dir) / (std::string(top1 ? "top1" : "kl") + "_vs_budget.svg"),
               eval::render_line_chart(spec));
  }
  // Plot 2: KL vs position at the smallest budget.
  {
    const int32_t b = *std::min_element(budgets.begin(), budgets.end());
    eval::ChartSpec spec;
    spec.title = "KL(full || compressed) by position, decode budget " + std::to_string(b);
    spec.x_label = "generated position (bucket start)";
    spec.y_label = "mean KL (nats)";
    for (const auto& r : records) {
      if (r.policy == "full" || r.decode_budget != b) continue;
      eval::ChartSeries s;
      s.name = r.label.substr(0, r.label.rfind(" B="));
      for (size_t k = 0; k < r.kl_by_bucket.size(); ++k) {
        s.x.push_back(static_cast<double>(k) * bucket);
        s.y.push_back(r.kl_by_bucket[k]);
      }
      spec.series.push_back(std::move(s));
    }
    write_file(fs::path(out_dir) / "kl_by_position.svg", eval::render_line_chart(spec));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "eval: done in %.1f s; wrote %s/results.{json,csv,md} and plots\n", s,
               out_dir.c_str());
  std::fputs(eval::to_markdown(records).c_str(), stdout);
  return 0;
}

}  // namespace momentkv::tools
