#include "daemon/config_editor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "daemon/daemon_config.h"

namespace momentkv {

namespace {

// Where the scanner is between lines: inside a multi-line string, or inside brackets.
struct ScanState {
  enum { kNone, kBasic, kLiteral } ml = kNone;  // """ or ''' string
  int depth = 0;                                // open [ and { of arrays / inline tables
  bool open() const { return ml != kNone || depth > 0; }
};

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

// Scans TOML value text s[i..] carrying `st` across lines; returns where a comment starts
// (a '#' outside strings), or s.size().
size_t scan(const std::string& s, size_t i, ScanState& st) {
  while (i < s.size()) {
    if (st.ml != ScanState::kNone) {
      const char q = st.ml == ScanState::kBasic ? '"' : '\'';
      if (st.ml == ScanState::kBasic && s[i] == '\\') {
        i += 2;
      } else if (s[i] == q && s.compare(i, 3, std::string(3, q)) == 0) {
        i += 3;
        while (i < s.size() && s[i] == q) ++i;  // up to two quotes may end the content
        st.ml = ScanState::kNone;
      } else {
        ++i;
      }
      continue;
    }
    const char c = s[i];
    if (c == '#') return i;
    if (c == '"' || c == '\'') {
      if (s.compare(i, 3, std::string(3, c)) == 0) {
        st.ml = c == '"' ? ScanState::kBasic : ScanState::kLiteral;
        i += 3;
        continue;
      }
      for (++i; i < s.size() && s[i] != c; ++i) {
        if (c == '"' && s[i] == '\\') ++i;
      }
      ++i;  // the closing quote
      continue;
    }
    if (c == '[' || c == '{') ++st.depth;
    if ((c == ']' || c == '}') && st.depth > 0) --st.depth;
    ++i;
  }
  return s.size();
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// A key or table name with whitespace around dots removed and simple quotes dropped:
// `[ "kv" ]` and `[kv]` name the same table.
std::string normalize_name(const std::string& s) {
  std::string out, part;
  char quote = 0;
  const auto flush = [&] {
    std::string p = trim(part);
    if (p.size() >= 2 && (p.front() == '"' || p.front() == '\'') && p.back() == p.front()) {
      p = p.substr(1, p.size() - 2);
    }
    out += p;
    part.clear();
  };
  for (char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '.') {
      flush();
      out += '.';
      continue;
    }
    part += c;
  }
  flush();
  return out;
}

bool is_bare_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

struct Line {
  std::string body, eol;  // eol: "\n", "\r\n" or "" (last line without one)
  enum Kind { kBlank, kComment, kHeader, kKey, kContinuation, kOther } kind = kOther;
  std::string name;  // header: normalized table name ("[[x]]" for arrays of tables); key: key
  int table = -1;    // key lines: index of the header line above (-1: root)
  size_t value_begin = 0, value_end = 0, comment = std::string::npos;  // key lines
  bool multiline = false;  // key lines whose value continues on the next lines
};

Line plain_line(std::string body, const std::string& eol) {
  Line l;
  l.body = std::move(body);
  l.eol = eol;
  return l;
}

std::vector<Line> parse_lines(const std::string& text) {
  std::vector<Line> lines;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    const size_t stop = nl == std::string::npos ? text.size() : nl;
    const size_t cr = nl != std::string::npos && stop > pos && text[stop - 1] == '\r' ? 1 : 0;
    Line l;
    l.body.assign(text, pos, stop - cr - pos);
    if (nl != std::string::npos) l.eol.assign(text, stop - cr, cr + 1);  // "\n" or "\r\n"
    pos = stop + 1;
    lines.push_back(std::move(l));
  }
  ScanState st;
  int table = -1;
  for (size_t n = 0; n < lines.size(); ++n) {
    Line& l = lines[n];
    const std::string& s = l.body;
    if (st.open()) {
      l.kind = Line::kContinuation;
      l.table = table;
      scan(s, 0, st);
      continue;
    }
    size_t i = 0;
    while (i < s.size() && is_space(s[i])) ++i;
    if (i == s.size()) {
      l.kind = Line::kBlank;
    } else if (s[i] == '#') {
      l.kind = Line::kComment;
    } else if (s[i] == '[') {
      const bool array = s.compare(i, 2, "[[") == 0;
      const size_t open = i + (array ? 2 : 1);
      // The name ends at the first ']' outside quotes.
      size_t j = open;
      char quote = 0;
      for (; j < s.size() && (quote || s[j] != ']'); ++j) {
        if (quote && s[j] == quote) {
          quote = 0;
        } else if (!quote && (s[j] == '"' || s[j] == '\'')) {
          quote = s[j];
        }
      }
      l.kind = Line::kHeader;
      l.name = normalize_name(s.substr(open, j - open));
      if (array) l.name = "[[" + l.name + "]]";
      table = static_cast<int>(n);
    } else {
      // key = value: the key ends at the first '=' outside quotes.
      size_t j = i;
      char quote = 0;
      for (; j < s.size() && (quote || s[j] != '='); ++j) {
        if (quote && s[j] == quote) {
          quote = 0;
        } else if (!quote && (s[j] == '"' || s[j] == '\'')) {
          quote = s[j];
        }
      }
      if (j == s.size()) continue;  // not TOML we understand: left as it is
      l.kind = Line::kKey;
      l.table = table;
      l.name = normalize_name(s.substr(i, j - i));
      size_t v = j + 1;
      while (v < s.size() && is_space(s[v])) ++v;
      l.value_begin = v;
      const size_t c = scan(s, v, st);
      size_t e = c;
      while (e > v && is_space(s[e - 1])) --e;
      l.value_end = e;
      if (c < s.size()) l.comment = c;
      l.multiline = st.open();
    }
  }
  return lines;
}

// The value text with the new literal, the trailing comment kept at its column when the
// whitespace before it allows.
std::string replace_value(const Line& l, const std::string& literal) {
  const std::string& s = l.body;
  std::string out = s.substr(0, l.value_begin) + literal;
  if (l.comment == std::string::npos) return out + s.substr(l.value_end);
  const std::string gap = s.substr(l.value_end, l.comment - l.value_end);
  const auto old_len = static_cast<long>(l.value_end - l.value_begin);
  const auto new_len = static_cast<long>(literal.size());
  const auto width = static_cast<long>(gap.size());
  if (gap.find('\t') != std::string::npos || new_len == old_len) return out + s.substr(l.value_end);
  const long keep = std::max(std::min(width, 1L), width - (new_len - old_len));
  return out + std::string(static_cast<size_t>(keep), ' ') + s.substr(l.comment);
}

void check_values(const ConfigValues& values) {
  std::set<std::string> seen;
  for (const auto& [key, literal] : values) {
    if (!is_bare_key(key)) throw ConfigError("config edit: \"" + key + "\" is not a bare TOML key");
    if (!seen.insert(key).second) throw ConfigError("config edit: key " + key + " given twice");
    ScanState st;
    const bool one_line = literal.find_first_of("\r\n") == std::string::npos;
    const size_t comment = one_line ? scan(literal, 0, st) : 0;
    if (!one_line || literal.empty() || comment != literal.size() || st.open() ||
        trim(literal) != literal) {
      throw ConfigError("config edit: " + key + " = " + literal +
                        ": the value must be one TOML value on one line, without a comment");
    }
    try {
      (void)toml::parse("v = " + literal);
    } catch (const toml::parse_error& e) {
      throw ConfigError("config edit: " + key + " = " + literal +
                        " is not a TOML value: " + std::string(e.description()));
    }
  }
}

std::string join(const std::vector<Line>& lines) {
  std::string out;
  for (const auto& l : lines) out += l.body + l.eol;
  return out;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

std::string set_config_values(const std::string& text, const std::string& table,
                              const ConfigValues& values) {
  const std::string name = normalize_name(table);
  if (name.empty() || name.find('[') != std::string::npos) {
    throw ConfigError("config edit: \"" + table + "\" is not a table name");
  }
  check_values(values);
  std::vector<Line> lines = parse_lines(text);
  const std::string eol = !lines.empty() && lines.front().eol == "\r\n" ? "\r\n" : "\n";

  int header = -1;
  for (size_t n = 0; n < lines.size(); ++n) {
    if (lines[n].kind != Line::kHeader || lines[n].name != name) continue;
    if (header >= 0) throw ConfigError("config edit: table [" + name + "] is defined twice");
    header = static_cast<int>(n);
  }

  if (header < 0) {
    if (!lines.empty()) {
      if (lines.back().eol.empty()) lines.back().eol = eol;
      if (lines.back().kind != Line::kBlank) lines.push_back(plain_line("", eol));
    }
    lines.push_back(plain_line("[" + name + "]", eol));
    for (const auto& [key, literal] : values) {
      lines.push_back(plain_line(key + " = " + literal, eol));
    }
    return join(lines);
  }

  // The table's block: from its header to the next header.
  size_t end = static_cast<size_t>(header) + 1;
  while (end < lines.size() && lines[end].kind != Line::kHeader) ++end;
  ConfigValues missing;
  for (const auto& [key, literal] : values) {
    bool found = false;
    for (size_t n = static_cast<size_t>(header) + 1; n < end; ++n) {
      Line& l = lines[n];
      if (l.kind != Line::kKey || l.name != key) continue;
      if (l.multiline) {
        throw ConfigError("config edit: " + name + "." + key +
                          " spans several lines; edit it by hand");
      }
      l.body = replace_value(l, literal);
      found = true;
    }
    if (!found) missing.emplace_back(key, literal);
  }
  if (missing.empty()) return join(lines);

  // After the last key (and its continuation lines); in a table without keys, after the header
  // and the comment lines right under it.
  size_t at = static_cast<size_t>(header) + 1;
  std::string indent;
  for (size_t n = at; n < end; ++n) {
    if (lines[n].kind == Line::kKey || lines[n].kind == Line::kContinuation) at = n + 1;
    if (lines[n].kind == Line::kKey) {
      indent = lines[n].body.substr(0, lines[n].body.find_first_not_of(" \t"));
    }
  }
  if (at == static_cast<size_t>(header) + 1) {
    while (at < end && lines[at].kind == Line::kComment) ++at;
  }
  if (lines[at - 1].eol.empty()) lines[at - 1].eol = eol;
  std::vector<Line> added;
  for (const auto& [key, literal] : missing) {
    added.push_back(plain_line(indent + key + " = " + literal, eol));
  }
  if (at == lines.size()) added.back().eol = text.empty() || text.back() == '\n' ? eol : "";
  lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(at), added.begin(), added.end());
  return join(lines);
}

void write_config_values(const std::string& path, const std::string& table,
                         const ConfigValues& values) {
  // Edit the file a symlink points to, not the link.
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (!resolved) throw ConfigError("cannot read config file " + path + ": " + errno_text());
  const std::string target(resolved);
  std::free(resolved);
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw ConfigError("config file " + path + " is not a regular file");
  }
  std::string text;
  {
    std::ifstream in(target, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in) throw ConfigError("cannot read config file " + path);
    text = ss.str();
  }
  const std::string edited = set_config_values(text, table, values);
  try {
    (void)parse_daemon_config(edited, path);
  } catch (const ConfigError& e) {
    throw ConfigError("not writing " + path + ": the edited configuration is invalid: " + e.what());
  }

  const size_t slash = target.rfind('/');
  const std::string dir = target.substr(0, slash == 0 ? 1 : slash);
  std::string tmp = dir + (dir == "/" ? "" : "/") + "." + target.substr(slash + 1) + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    throw ConfigError("cannot write config file " + path + ": cannot create a temporary file in " +
                      dir + ": " + errno_text());
  }
  const auto fail = [&](const std::string& what) {
    const std::string err = errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    throw ConfigError("cannot write config file " + path + ": " + what + ": " + err);
  };
  for (size_t done = 0; done < edited.size();) {
    const ssize_t n = ::write(fd, edited.data() + done, edited.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write " + tmp);
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, st.st_mode & 07777) != 0) fail("chmod " + tmp);
  if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
      ::fchown(fd, st.st_uid, st.st_gid) != 0) {
    fail("keep the owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid));
  }
  if (::fsync(fd) != 0) fail("fsync " + tmp);
  if (::close(fd) != 0) {
    const std::string err = errno_text();
    ::unlink(tmp.c_str());
    throw ConfigError("cannot write config file " + path + ": close " + tmp + ": " + err);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string err = errno_text();
    ::unlink(tmp.c_str());
    throw ConfigError("cannot write config file " + path + ": rename: " + err);
  }
  // Make the rename durable. The new file is already in place, so a failure here is not
  // reported: the edit is complete, only its survival of a power cut is not guaranteed.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace momentkv
