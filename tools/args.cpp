#include "tools/args.h"

#include "core/engine/memory_budget.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace momentkv::tools {

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::add(std::vector<std::string> names, std::string metavar, std::string help,
                    std::function<void(const std::string&)> set) {
  flags_.push_back({std::move(names), std::move(metavar), std::move(help), std::move(set), {}});
}

void ArgParser::add_switch(std::vector<std::string> names, std::string help,
                           std::function<void()> set) {
  flags_.push_back({std::move(names), "", std::move(help), {}, std::move(set)});
}

void ArgParser::positional(std::string metavar, std::string help,
                           std::function<void(const std::string&)> set) {
  pos_metavar_ = std::move(metavar);
  pos_help_ = std::move(help);
  pos_set_ = std::move(set);
}

bool ArgParser::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    std::optional<std::string> inline_value;
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a = a.substr(0, eq);
      }
    }
    const Flag* hit = nullptr;
    for (const auto& f : flags_) {
      for (const auto& n : f.names) {
        if (n == a) hit = &f;
      }
    }
    if (!hit) {
      if (a.size() > 1 && a[0] == '-' && !std::isdigit(static_cast<unsigned char>(a[1]))) {
        throw UsageError("unknown option '" + a + "' (see " + command_ + " --help)");
      }
      if (!pos_set_) throw UsageError("unexpected argument '" + a + "'");
      pos_set_(argv[i]);
      continue;
    }
    if (hit->set_switch) {
      if (inline_value) throw UsageError("option '" + a + "' takes no value");
      hit->set_switch();
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc)
        throw UsageError("option '" + a + "' needs a value (" + hit->metavar + ")");
      inline_value = argv[++i];
    }
    hit->set(*inline_value);
  }
  return true;
}

std::string ArgParser::usage() const {
  std::ostringstream os;
  os << "usage: momentkv " << command_ << " [options]";
  if (pos_set_) os << " " << pos_metavar_;
  os << "\n" << summary_ << "\n\noptions:\n";
  for (const auto& f : flags_) {
    std::string left = "  ";
    for (size_t k = 0; k < f.names.size(); ++k) left += (k ? ", " : "") + f.names[k];
    if (!f.metavar.empty()) left += " " + f.metavar;
    os << left;
    if (left.size() < 30) {
      os << std::string(30 - left.size(), ' ');
    } else {
      os << "\n" << std::string(30, ' ');
    }
    os << f.help << "\n";
  }
  if (pos_set_)
    os << "  " << pos_metavar_ << std::string(28 - pos_metavar_.size() % 28, ' ') << pos_help_
       << "\n";
  os << "  -h, --help                  show this help\n";
  return os.str();
}

int64_t ArgParser::to_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || x < lo || x > hi) {
    throw UsageError(flag + " expects an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got '" + v + "'");
  }
  return x;
}

double ArgParser::to_double(const std::string& flag, const std::string& v) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || !std::isfinite(x)) {
    throw UsageError(flag + " expects a number, got '" + v + "'");
  }
  return x;
}

uint64_t ArgParser::to_bytes(const std::string& flag, const std::string& v) {
  const auto b = parse_bytes(v);
  if (!b) throw UsageError(flag + " expects a size like 512MiB or 2G, got '" + v + "'");
  return *b;
}

}  // namespace momentkv::tools
